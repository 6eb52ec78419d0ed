"""Open Inference Protocol (KServe v2) tensors: request inputs in, the model's matrix out.

Pure functions, no HTTP: :mod:`.v2` calls them. A request carries either one tensor per
feature of the schema (``FP32`` for a numeric feature, ``INT64`` for a categorical code,
shape ``[n]`` or ``[n, 1]``) or the whole matrix as one :data:`MATRIX_INPUT` tensor
(``FP32 [n, width]``, the input of the Triton backend's graph). Tensor data is JSON (a
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

from mlgen_runtime.schema import FeatureSchema

MATRIX_INPUT = "features"
"""The name of the one-tensor form of the input (the whole ``[n, width]`` matrix)."""
PROBABILITIES_OUTPUT = "probabilities"
"""``FP32 [n, 2]``: P(class 0), P(class 1) per row (the Triton backend's output)."""
LABEL_OUTPUT = "label"
"""``INT64 [n, 1]``: the predicted class per row."""
OUTPUTS = (PROBABILITIES_OUTPUT, LABEL_OUTPUT)
NUMBER_TYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
"""The protocol's fixed-size datatypes and their little-endian numpy types."""


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


def input_specs(schema: FeatureSchema) -> tuple[TensorSpec, ...]:
    """One input per feature, in schema order: ``FP32`` numeric, ``INT64`` categorical."""
    return tuple(
        TensorSpec(feature.name, "INT64" if feature.kind == "categorical" else "FP32", (-1,))
        for feature in schema.features
    )


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


def _from_json(name: str, datatype: str, data: Any) -> np.ndarray:
    values = list(_flat(data)) if isinstance(data, list) else [data]
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


def decode(tensor: Any, binary: memoryview, offset: int) -> tuple[np.ndarray, int]:
    """The values of one request input, shaped, and the binary offset after it.

    Args:
        tensor: the parsed input (``name``, ``shape``, ``datatype``, ``parameters``, ``data``).
        binary: the bytes after the JSON header (empty without the binary extension).
        offset: where this input's bytes start, when it has ``binary_data_size``.

    Raises:
        TensorError: an unknown datatype, a negative dimension, data that does not fill
            the shape, or values of another type.
    """
    name, datatype = tensor.name, tensor.datatype
    dtype = NUMBER_TYPES.get(datatype)
    if dtype is None:
        hint = (
            " (BYTES carries strings; this model's inputs are numbers)"
            if datatype == "BYTES"
            else ""
        )
        raise TensorError(f"input {name!r}: unsupported datatype {datatype!r}{hint}")
    if any(dim < 0 for dim in tensor.shape):
        raise TensorError(f"input {name!r}: shape {tensor.shape} has a negative dimension")
    count = math.prod(tensor.shape)
    size = (tensor.parameters or {}).get("binary_data_size")
    if size is not None:
        if type(size) is not int or size < 0 or offset + size > len(binary):
            raise TensorError(f"input {name!r}: binary_data_size {size!r} is not in the body")
        if size != count * dtype.itemsize:
            raise TensorError(
                f"input {name!r}: shape {tensor.shape} of {datatype} needs "
                f"{count * dtype.itemsize} bytes, binary_data_size is {size}"
            )
        values = np.frombuffer(binary, dtype=dtype, count=count, offset=offset)
        offset += size
    elif tensor.data is None:
        raise TensorError(f"input {name!r} has no data (nor binary_data_size)")
    else:
        values = _from_json(name, datatype, tensor.data)
        if values.size != count:
            raise TensorError(
                f"input {name!r}: shape {tensor.shape} holds {count} values, data has {values.size}"
            )
    return values.reshape(tensor.shape), offset


def feature_matrix(
    schema: FeatureSchema, tensors: Sequence[Any], binary: memoryview, max_rows: int
) -> np.ndarray:
    """The ``float32`` input matrix ``[n, width]`` of a request's inputs, validated.

    Raises:
        TensorError: a missing, unknown or repeated input, a wrong datatype or shape,
            batch sizes that differ, more than ``max_rows`` rows, or a value outside its
            feature's range.
    """
    names = [tensor.name for tensor in tensors]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise TensorError(f"input {repeated[0]!r} is given more than once")
    offset = 0
    if names == [MATRIX_INPUT] and MATRIX_INPUT not in schema.names:
        (tensor,) = tensors
        _expect(tensor, "FP32", 2)
        values, offset = decode(tensor, binary, offset)
        if values.shape[1] != schema.width:
            raise TensorError(
                f"input {MATRIX_INPUT!r}: shape {tensor.shape} must be [n, {schema.width}]"
            )
        matrix = np.ascontiguousarray(values, dtype=np.float32)
    else:
        specs = {spec.name: spec for spec in input_specs(schema)}
        unknown = [name for name in names if name not in specs]
        if unknown:
            raise TensorError(
                f"unknown input {unknown[0]!r}: the inputs are {', '.join(specs)} "
                f"(or one {MATRIX_INPUT!r} FP32 [n, {schema.width}] tensor)"
            )
        missing = [name for name in specs if name not in names]
        if missing:
            raise TensorError(f"missing input {missing[0]!r}")
        by_name = {}
        for tensor in tensors:  # in request order: binary data follows that order
            _expect(tensor, specs[tensor.name].datatype, 1)
            values, offset = decode(tensor, binary, offset)
            by_name[tensor.name] = values.reshape(-1)
        sizes = {len(values) for values in by_name.values()}
        if len(sizes) > 1:
            raise TensorError(f"the inputs have different batch sizes: {sorted(sizes)}")
        matrix = np.empty((sizes.pop(), schema.width), dtype=np.float32)
        for column, name in enumerate(schema.names):
            matrix[:, column] = by_name[name]
    if offset != len(binary):
        raise TensorError(f"the body has {len(binary) - offset} bytes no input claims")
    if not 1 <= len(matrix) <= max_rows:
        raise TensorError(f"a request holds 1 to {max_rows} rows, this one {len(matrix)}")
    _check_values(schema, matrix, by_feature=names != [MATRIX_INPUT])
    return matrix


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


def _check_values(schema: FeatureSchema, matrix: np.ndarray, by_feature: bool) -> None:
    """Refuse a value that is not finite, out of range, or not a categorical code."""
    for column, feature in enumerate(schema.features):
        values = matrix[:, column]
        bad = ~np.isfinite(values) | (values < feature.minimum) | (values > feature.maximum)
        if feature.kind == "categorical":
            bad |= values != np.round(values)
        if bad.any():
            row = int(np.argmax(bad))
            where = (
                f"input {feature.name!r}"
                if by_feature
                else f"input {MATRIX_INPUT!r} column {feature.name!r}"
            )
            problem = feature.problem(float(values[row])) or "invalid value"
            raise TensorError(f"{where}, row {row}: {problem}")


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
