"""Open Inference Protocol (KServe v2) tensors: request inputs in, the model's matrix out.

No HTTP here (:mod:`.v2` serves it). A request carries either one tensor per
feature of the schema (``FP32`` for a numeric feature, ``INT64`` for a categorical code,
``BYTES`` for a category with string levels; shape ``[n]`` or ``[n, 1]``) or, when the
schema has no string category and no nullable feature, the whole matrix as one
:data:`MATRIX_INPUT` tensor (``FP32 [n, width]``, the input of the Triton backend's
graph). A nullable feature's null is ``null`` in JSON data, NaN in binary ``FP32`` data,
and the empty string in a ``BYTES`` input. Tensor data is JSON (a
flat or nested row-major list) or, with the binary tensor data extension, raw
little-endian bytes after the JSON header (``parameters.binary_data_size``). Every
refusal is a :class:`TensorError` whose message names the input.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlgen_runtime.datatypes import NUMBER_TYPES
from mlgen_runtime.export.preprocessing import NULL_STRING, needs_preprocessing
from mlgen_runtime.schema import FeatureSchema

MATRIX_INPUT = "features"
"""The name of the one-tensor form of the input (the whole ``[n, width]`` matrix)."""
PROBABILITIES_OUTPUT = "probabilities"
"""``FP32 [n, 2]``: P(class 0), P(class 1) per row (the Triton backend's output)."""
LABEL_OUTPUT = "label"
"""``INT64 [n, 1]``: the predicted class per row."""
OUTPUTS = (PROBABILITIES_OUTPUT, LABEL_OUTPUT)


class TensorError(ValueError):
    """A request tensor does not fit the model (the message names the input)."""


@dataclass(frozen=True)
class TensorSpec:
    """A tensor of the model's metadata: name, datatype and shape (-1: any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        """The protocol's ``$metadata_tensor`` object."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def datatype(feature: Any) -> str:
    """A feature's input datatype: ``BYTES`` for a category with string levels, ``INT64``
    for another category or a boolean, ``FP32`` for a number."""
    if getattr(feature, "string_levels", False):
        return "BYTES"
    return "INT64" if feature.kind == "categorical" else "FP32"


def input_specs(schema: FeatureSchema) -> tuple[TensorSpec, ...]:
    """One input per feature, in schema order (datatypes: :func:`datatype`)."""
    return tuple(TensorSpec(feature.name, datatype(feature), (-1,)) for feature in schema.features)


def output_specs() -> tuple[TensorSpec, ...]:
    """The outputs every model of the service has."""
    return (
        TensorSpec(PROBABILITIES_OUTPUT, "FP32", (-1, 2)),
        TensorSpec(LABEL_OUTPUT, "INT64", (-1, 1)),
    )


def _flat(data: Any) -> Iterator[Any]:
    """The leaves of a (possibly nested) JSON list, in row-major order."""
    for item in data:
        if isinstance(item, list):
            yield from _flat(item)
        else:
            yield item


def _from_json(name: str, datatype: str, data: Any, nullable: bool = False) -> np.ndarray:
    values = list(_flat(data)) if isinstance(data, list) else [data]
    if datatype == "BYTES":
        if not all(type(value) is str for value in values):
            raise TensorError(f"input {name!r}: data must be BYTES values (strings)")
        return np.array(values, dtype=object)
    if any(value is None for value in values):
        if not nullable:
            raise TensorError(f"input {name!r}: a null in data, but the feature is not nullable")
        present = [value for value in values if value is not None]
        if not all(type(value) in (int, float) for value in present):
            raise TensorError(f"input {name!r}: data must be {datatype} values or null")
        return np.array([np.nan if value is None else value for value in values], np.float64)
    if datatype == "BOOL":
        ok = all(type(value) is bool for value in values)
    elif datatype.startswith(("INT", "UINT")):
        ok = all(type(value) is int for value in values)
    else:
        ok = all(type(value) in (int, float) for value in values)
    if not ok:
        raise TensorError(f"input {name!r}: data must be {datatype} values")
    try:
        return np.asarray(values, dtype=NUMBER_TYPES[datatype])
    except OverflowError:
        raise TensorError(f"input {name!r}: a value does not fit {datatype}") from None


def _strings(name: str, raw: memoryview, count: int) -> np.ndarray:
    """``count`` BYTES elements of the binary extension: each a 4-byte little-endian
    length and that many bytes (UTF-8 text here)."""
    values, position = [], 0
    for _ in range(count):
        if position + 4 > len(raw):
            raise TensorError(f"input {name!r}: BYTES data ends inside an element's length")
        length = int.from_bytes(raw[position : position + 4], "little")
        position += 4
        if position + length > len(raw):
            raise TensorError(f"input {name!r}: BYTES element longer than the data")
        try:
            values.append(bytes(raw[position : position + length]).decode("utf-8"))
        except UnicodeDecodeError:
            raise TensorError(f"input {name!r}: a BYTES element is not UTF-8 text") from None
        position += length
    if position != len(raw):
        raise TensorError(f"input {name!r}: BYTES data holds more than {count} elements")
    return np.array(values, dtype=object)


def decode(
    tensor: Any, binary: memoryview, offset: int, nullable: bool = False
) -> tuple[np.ndarray, int]:
    """The values of one request input, shaped, and the binary offset after it.

    Args:
        tensor: the parsed input (``name``, ``shape``, ``datatype``, ``parameters``, ``data``).
        binary: the bytes after the JSON header (empty without the binary extension).
        offset: where this input's bytes start, when it has ``binary_data_size``.
        nullable: JSON ``null`` values are accepted (as NaN, in a ``float64`` array).

    Raises:
        TensorError: an unknown datatype, a negative dimension, data that does not fill
            the shape, or values of another type.
    """
    name, datatype = tensor.name, tensor.datatype
    dtype = NUMBER_TYPES.get(datatype)
    if dtype is None and datatype != "BYTES":
        raise TensorError(f"input {name!r}: unsupported datatype {datatype!r}")
    if any(dim < 0 for dim in tensor.shape):
        raise TensorError(f"input {name!r}: shape {tensor.shape} has a negative dimension")
    count = math.prod(tensor.shape)
    size = (tensor.parameters or {}).get("binary_data_size")
    if size is not None:
        if type(size) is not int or size < 0 or offset + size > len(binary):
            raise TensorError(f"input {name!r}: binary_data_size {size!r} is not in the body")
        if dtype is None:  # BYTES: each element its length and its bytes
            values = _strings(name, binary[offset : offset + size], count)
        elif size != count * dtype.itemsize:
            raise TensorError(
                f"input {name!r}: shape {tensor.shape} of {datatype} needs "
                f"{count * dtype.itemsize} bytes, binary_data_size is {size}"
            )
        else:
            values = np.frombuffer(binary, dtype=dtype, count=count, offset=offset)
        offset += size
    elif tensor.data is None:
        raise TensorError(f"input {name!r} has no data (nor binary_data_size)")
    else:
        values = _from_json(name, datatype, tensor.data, nullable)
        if values.size != count:
            raise TensorError(
                f"input {name!r}: shape {tensor.shape} holds {count} values, data has {values.size}"
            )
    return values.reshape(tensor.shape), offset


class InputReader:
    """Turns a request's input tensors into the model's ``float32`` matrix, for one schema.

    Args:
        schema: the features (the inputs, their datatypes and valid values).
        max_rows: the most rows one request may hold.
    """

    def __init__(self, schema: FeatureSchema, max_rows: int) -> None:
        self.schema = schema
        self.max_rows = max_rows
        self.specs = {spec.name: spec for spec in input_specs(schema)}
        self._minimum = np.array([f.minimum for f in schema.features], dtype=np.float32)
        self._maximum = np.array([f.maximum for f in schema.features], dtype=np.float32)
        self._categorical = np.array([f.kind == "categorical" for f in schema.features])
        self.raw = needs_preprocessing(schema.features)
        """Whether the model takes raw values by feature (see :meth:`columns`)."""

    def read(self, tensors: Sequence[Any], binary: memoryview) -> Any:
        """:meth:`columns` for a model with preprocessing, else :meth:`matrix`."""
        return self.columns(tensors, binary) if self.raw else self.matrix(tensors, binary)

    def columns(self, tensors: Sequence[Any], binary: memoryview) -> dict[str, np.ndarray]:
        """The validated raw values of the request's ``tensors``, by feature name: strings
        (``object``; ``None`` for a null) for a ``BYTES`` input, ``float32`` (NaN for a
        null) for the others. A null is the empty string in a ``BYTES`` input, and
        ``null`` in JSON data or NaN in binary ``FP32`` data; only a nullable feature may
        have one.

        Raises:
            TensorError: as :meth:`matrix`, and a null in a feature that is not
                nullable, or a level the schema does not accept (the message names them).
        """
        names = [tensor.name for tensor in tensors]
        if len(set(names)) != len(names):
            repeated = sorted({name for name in names if names.count(name) > 1})
            raise TensorError(f"input {repeated[0]!r} is given more than once")
        specs = self.specs
        unknown = [tensor.name for tensor in tensors if tensor.name not in specs]
        if unknown:
            raise TensorError(
                f"unknown input {unknown[0]!r}: the inputs are {', '.join(specs)} "
                "(one tensor per feature)"
            )
        given = set(names)
        missing = [name for name in specs if name not in given]
        if missing:
            raise TensorError(f"missing input {missing[0]!r}")
        offset = 0
        columns: dict[str, np.ndarray] = {}
        for tensor in tensors:
            feature = self.schema.feature(tensor.name)
            _expect(tensor, specs[tensor.name].datatype, 1)
            values, offset = decode(tensor, binary, offset, nullable=feature.nullable)
            columns[tensor.name] = values.reshape(-1)
        if offset != len(binary):
            raise TensorError(f"the body has {len(binary) - offset} bytes no input claims")
        sizes = {len(values) for values in columns.values()}
        if len(sizes) > 1:
            raise TensorError(f"the inputs have different batch sizes: {sorted(sizes)}")
        rows = sizes.pop()
        if not 1 <= rows <= self.max_rows:
            raise TensorError(f"a request holds 1 to {self.max_rows} rows, this one {rows}")
        return {name: self._checked(self.schema.feature(name), columns[name]) for name in specs}

    @staticmethod
    def _checked(feature: Any, values: np.ndarray) -> np.ndarray:
        """``values`` of one feature, nulls made ``None`` / NaN, refused when invalid."""
        if values.dtype == object:
            null = values == NULL_STRING
            values = values.copy()
            values[null] = None
            if feature.string_levels and feature.unknown == "reject":
                allowed = set(feature.levels)
                bad = ~null & ~np.isin(values, list(allowed))
            else:
                bad = np.zeros(len(values), dtype=bool)
        else:
            values = values.astype(np.float64)
            null = np.isnan(values)
            bad = np.zeros(len(values), dtype=bool)
            present = ~null
            if present.any():
                checked = values[present]
                wrong = (
                    ~np.isfinite(checked)
                    | (checked < feature.minimum)
                    | (checked > feature.maximum)
                )
                if feature.kind == "categorical":
                    wrong |= ~np.isin(checked, feature.codes)
                elif feature.type == "integer":
                    wrong |= checked != np.round(checked)
                bad[present] = wrong
            values = values.astype(np.float32)
        if not feature.nullable:
            bad |= null
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            value: Any = values[row]
            if isinstance(value, np.floating):
                value = None if np.isnan(value) else float(value)
            problem = feature.problem(value)
            raise TensorError(f"input {feature.name!r}, row {row}: {problem or 'invalid value'}")
        return values

    def matrix(self, tensors: Sequence[Any], binary: memoryview) -> np.ndarray:
        """The validated input matrix ``[n, width]`` of the request's ``tensors``.

        Raises:
            TensorError: a missing, unknown or repeated input, a wrong datatype or shape,
                batch sizes that differ, bytes no input claims, not 1 to ``max_rows``
                rows, or a value outside its feature's range.
        """
        names = [tensor.name for tensor in tensors]
        if len(set(names)) != len(names):
            repeated = sorted({name for name in names if names.count(name) > 1})
            raise TensorError(f"input {repeated[0]!r} is given more than once")
        if MATRIX_INPUT in names and len(names) > 1 and MATRIX_INPUT not in self.specs:
            other = next(name for name in names if name != MATRIX_INPUT)
            raise TensorError(
                f"unknown input {other!r}: beside one {MATRIX_INPUT!r} tensor the model "
                "takes no other input"
            )
        by_feature = names != [MATRIX_INPUT] or MATRIX_INPUT in self.specs
        if by_feature:
            matrix, offset = self._columns(tensors, binary)
        else:
            matrix, offset = self._whole(tensors[0], binary)
        if offset != len(binary):
            raise TensorError(f"the body has {len(binary) - offset} bytes no input claims")
        if not 1 <= len(matrix) <= self.max_rows:
            raise TensorError(f"a request holds 1 to {self.max_rows} rows, this one {len(matrix)}")
        self._check_values(matrix, by_feature)
        return matrix

    def _whole(self, tensor: Any, binary: memoryview) -> tuple[np.ndarray, int]:
        """The matrix given as one ``features`` tensor, and the binary offset after it."""
        _expect(tensor, "FP32", 2)
        values, offset = decode(tensor, binary, 0)
        if values.shape[1] != self.schema.width:
            raise TensorError(
                f"input {MATRIX_INPUT!r}: shape {tensor.shape} must be [n, {self.schema.width}]"
            )
        return np.ascontiguousarray(values, dtype=np.float32), offset

    def _columns(self, tensors: Sequence[Any], binary: memoryview) -> tuple[np.ndarray, int]:
        """The matrix of one tensor per feature, and the binary offset after them."""
        specs = self.specs
        unknown = [tensor.name for tensor in tensors if tensor.name not in specs]
        if unknown:
            raise TensorError(
                f"unknown input {unknown[0]!r}: the inputs are {', '.join(specs)} "
                f"(or one {MATRIX_INPUT!r} FP32 [n, {self.schema.width}] tensor)"
            )
        if len(tensors) < len(specs):
            given = {tensor.name for tensor in tensors}
            missing = next(name for name in specs if name not in given)
            raise TensorError(f"missing input {missing!r}")
        if not binary:
            matrix = self._json_columns(tensors)
            if matrix is not None:
                return matrix, 0
        offset = 0
        columns: dict[str, np.ndarray] = {}
        for tensor in tensors:  # in request order: binary data follows that order
            _expect(tensor, specs[tensor.name].datatype, 1)
            values, offset = decode(tensor, binary, offset)
            columns[tensor.name] = values.reshape(-1)
        sizes = {len(values) for values in columns.values()}
        if len(sizes) > 1:
            raise TensorError(f"the inputs have different batch sizes: {sorted(sizes)}")
        matrix = np.empty((sizes.pop(), self.schema.width), dtype=np.float32)
        for column, name in enumerate(specs):
            matrix[:, column] = columns[name]
        return matrix, offset

    def _json_columns(self, tensors: Sequence[Any]) -> np.ndarray | None:
        """The common request, in one numpy call: every tensor's data a flat JSON list of
        numbers of one length ``n``, its shape ``[n]`` or ``[n, 1]``, its datatype the
        model's. ``None`` for anything else: :meth:`_columns` then finds what is wrong."""
        by_name = {tensor.name: tensor for tensor in tensors}
        data = []
        for name, spec in self.specs.items():
            tensor = by_name[name]
            values = tensor.data
            if (
                tensor.datatype != spec.datatype
                or tensor.parameters
                or type(values) is not list
                or not values
                or tensor.shape not in ([len(values)], [len(values), 1])
            ):
                return None
            data.append(values)
        try:
            matrix = np.array(data, dtype=np.float64)
        except (ValueError, TypeError, OverflowError):
            return None  # ragged, nested, strings
        if matrix.ndim != 2 or any(type(v) is bool for values in data for v in values):
            return None
        return np.ascontiguousarray(matrix.T, dtype=np.float32)

    def _check_values(self, matrix: np.ndarray, by_feature: bool) -> None:
        """Refuse a value that is not finite, out of range, or not a categorical code (one
        vectorised pass; the message names the first bad value's input and row)."""
        bad = ~np.isfinite(matrix) | (matrix < self._minimum) | (matrix > self._maximum)
        bad |= self._categorical & (matrix != np.round(matrix))
        if not bad.any():
            return
        row, column = (int(index[0]) for index in np.nonzero(bad))
        feature = self.schema.features[column]
        where = f"input {feature.name!r}"
        if not by_feature:
            where = f"input {MATRIX_INPUT!r} column {feature.name!r}"
        problem = feature.problem(float(matrix[row, column])) or "invalid value"
        raise TensorError(f"{where}, row {row}: {problem}")


def _expect(tensor: Any, datatype: str, dims: int) -> None:
    """Refuse another datatype, or a shape of other than ``dims`` dimensions (a
    per-feature input may also be ``[n, 1]``)."""
    if tensor.datatype != datatype:
        raise TensorError(
            f"input {tensor.name!r}: datatype {tensor.datatype}, the model takes {datatype}"
        )
    shape = list(tensor.shape)
    if not (len(shape) == dims or (dims == 1 and len(shape) == 2 and shape[1] == 1)):
        wanted = "[n, width]" if dims == 2 else "[n] or [n, 1]"
        raise TensorError(f"input {tensor.name!r}: shape {shape} must be {wanted}")


def encode_outputs(
    probabilities: Sequence[float], threshold: float, requested: Sequence[Any] | None, binary: bool
) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The response's output objects and, for outputs sent as binary, their bytes.

    Args:
        probabilities: the positive-class probability of each row.
        threshold: a probability at or above it is label 1.
        requested: the request's ``outputs`` (``None``: all of them).
        binary: send outputs as binary unless an output's own ``binary_data`` says not.

    Raises:
        TensorError: a requested output the model does not have.
    """
    positive = np.asarray(probabilities, dtype=np.float32)
    tensors: dict[str, np.ndarray] = {
        PROBABILITIES_OUTPUT: np.column_stack([1.0 - positive, positive]).astype(np.float32),
        LABEL_OUTPUT: (positive >= threshold).astype(np.int64).reshape(-1, 1),
    }
    datatypes = {spec.name: spec.datatype for spec in output_specs()}
    wanted = (
        [(name, None) for name in OUTPUTS]
        if requested is None
        else [(output.name, (output.parameters or {}).get("binary_data")) for output in requested]
    )
    objects, chunks = [], []
    for name, as_binary in wanted:
        if name not in tensors:
            raise TensorError(f"unknown output {name!r}: the outputs are {', '.join(OUTPUTS)}")
        values = tensors[name]
        output: dict[str, Any] = {
            "name": name,
            "datatype": datatypes[name],
            "shape": list(values.shape),
        }
        if binary if as_binary is None else bool(as_binary):
            raw = values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes()
            output["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            output["data"] = values.reshape(-1).tolist()
        objects.append(output)
    return objects, chunks
