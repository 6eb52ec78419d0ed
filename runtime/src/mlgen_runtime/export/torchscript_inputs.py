"""The preprocessing inside a TorchScript model: raw feature values in, probabilities out.

:func:`with_raw_inputs` wraps a trained network (``forward(matrix) -> probabilities``) in
a module that TorchScript compiles whole: ``forward`` still takes the encoded matrix, and
the exported method ``forward_raw(numbers, strings)`` takes the raw columns by feature
name, encodes each string category with its stored vocabulary (an unknown value becomes
the ``other`` level's code, or NaN when the schema refuses unknown values: a server
refuses those first, naming the levels), replaces a nullable feature's nulls by the
value training imputed, and runs the network. The vocabulary and the imputed values are
attributes of the scripted module, so the ``.pt`` file alone encodes as training did:
the TorchServe handler calls ``forward_raw`` and holds no encoding of its own.

Usage (a repository's ``modeling.py``)::

    from mlgen_runtime.export import torchscript, torchscript_inputs

    module = torchscript_inputs.with_raw_inputs(network, preprocessing)
    torchscript.save(module, out_dir / "model.pt", schema=...)
    loaded, _ = torchscript.load(out_dir / "model.pt")
    loaded.forward_raw({"bill_length_mm": [39.1, None]}, {"island": ["Dream", None]})

The columns are :class:`~mlgen_runtime.export.preprocessing.Column` (the
:class:`~mlgen_runtime.export.preprocessing.Preprocessing` training fitted); a number's
column is ``List[Optional[float]]`` (``None`` or NaN: a null), a string category's
``List[Optional[str]]`` (``None`` or ``""``: a null). Needs torch (the repository's own
dependency); import this module only where torch is installed.
"""

# No ``from __future__ import annotations``: TorchScript reads these annotations as types.
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mlgen_runtime.export.preprocessing import Column, Preprocessing

__all__ = ["RawInputs", "raw_columns", "with_raw_inputs"]


class RawInputs(nn.Module):  # type: ignore[misc]
    """A network with its preprocessing: ``forward`` on the encoded matrix,
    ``forward_raw`` on raw columns by feature name (see the module docstring)."""

    # In the class body: TorchScript types an empty dict (no string category) from here.
    names: list[str]
    is_string: list[bool]
    vocabulary: dict[str, dict[str, float]]  # a string category's level -> code
    unknown: dict[str, float]  # its code of an unknown value (NaN: refused)
    fill: dict[str, float]  # a feature's imputed value (NaN: not nullable)

    def __init__(self, network: nn.Module, columns: Sequence[Column]) -> None:
        super().__init__()
        self.network = network
        # Follows the module to its device (torch.jit.load's map_location, .to()), so the
        # encoded matrix is built where the network runs.
        self.register_buffer("device_probe", torch.zeros(0))
        self.names = [column.name for column in columns]
        self.is_string = [column.is_string for column in columns]
        self.vocabulary = {
            column.name: {level: float(code) for code, level in enumerate(column.levels)}
            for column in columns
            if column.levels is not None
        }
        self.unknown = {
            column.name: math.nan if column.other is None else float(column.other)
            for column in columns
            if column.levels is not None
        }
        self.fill = {
            column.name: math.nan if column.fill is None else float(column.fill)
            for column in columns
        }

    def forward(self, features: Tensor) -> Tensor:
        """The network's probabilities of the encoded matrix ``[batch, features]``."""
        return self.network(features)

    @torch.jit.export  # type: ignore[untyped-decorator]
    def encode(
        self, numbers: dict[str, list[float | None]], strings: dict[str, list[str | None]]
    ) -> Tensor:
        """The encoded ``float32`` matrix ``[batch, features]`` of raw columns.

        Raises (in TorchScript, a ``RuntimeError`` naming the feature): a feature missing
        from its dict, or columns of different lengths.
        """
        columns: list[Tensor] = []
        for index, name in enumerate(self.names):
            fill = self.fill[name]
            values: list[float] = []
            if self.is_string[index]:
                if name not in strings:
                    raise RuntimeError("missing string feature " + name)
                vocabulary = self.vocabulary[name]
                unknown = self.unknown[name]
                for text in strings[name]:
                    if text is None or text == "":  # NULL_STRING (a global is not scriptable)
                        values.append(fill)
                    elif text in vocabulary:
                        values.append(vocabulary[text])
                    else:
                        values.append(unknown)
            else:
                if name not in numbers:
                    raise RuntimeError("missing number feature " + name)
                for number in numbers[name]:
                    if number is None or math.isnan(number):
                        values.append(fill)
                    else:
                        values.append(number)
            columns.append(
                torch.tensor(values, dtype=torch.float32, device=self.device_probe.device)
            )
        if len(columns) > 1:
            length = columns[0].shape[0]
            for index in range(1, len(columns)):
                if columns[index].shape[0] != length:
                    raise RuntimeError("feature " + self.names[index] + " has another length")
        return torch.stack(columns, dim=1)

    @torch.jit.export  # type: ignore[untyped-decorator]
    def forward_raw(
        self, numbers: dict[str, list[float | None]], strings: dict[str, list[str | None]]
    ) -> Tensor:
        """The probabilities of raw columns: :meth:`encode`, then the network."""
        return self.network(self.encode(numbers, strings))


def with_raw_inputs(network: nn.Module, preprocessing: Preprocessing) -> RawInputs:
    """``network`` (in eval mode) behind ``preprocessing``, ready for ``torch.jit.script``."""
    module: RawInputs = RawInputs(network.eval(), preprocessing.columns).eval()
    return module


def raw_columns(
    rows: Sequence[dict[str, Any]], columns: Sequence[Column]
) -> tuple[dict[str, list[float | None]], dict[str, list[str | None]]]:
    """``forward_raw``'s two arguments from rows of raw values (missing key: a null)."""
    numbers: dict[str, list[float | None]] = {}
    strings: dict[str, list[str | None]] = {}
    for column in columns:
        values = [row.get(column.name) for row in rows]
        if column.is_string:
            strings[column.name] = [None if value is None else str(value) for value in values]
        else:
            numbers[column.name] = [None if value is None else float(value) for value in values]
    return numbers, strings
