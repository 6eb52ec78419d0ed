"""Reading columns out of a matrix, a mapping or a DataFrame, without copying the whole."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


class DriftInputError(ValueError):
    """The window or the profile cannot be checked (missing columns, no values...)."""


def column_getter(data: Any, names: Sequence[str]) -> Callable[[int], Any]:
    """A function returning column ``i`` (the ``names[i]`` one) of a matrix or a mapping.

    Raises:
        DriftInputError: a named column is missing or the matrix has the wrong width.
    """
    if isinstance(data, np.ndarray):
        if data.ndim != 2 or data.shape[1] != len(names):
            raise DriftInputError(
                f"expected a 2-D array with {len(names)} columns "
                f"({', '.join(names)}), got shape {data.shape}"
            )
        return lambda index: data[:, index]
    if not hasattr(data, "keys"):
        raise DriftInputError(f"expected a 2-D array or columns by name, got {type(data).__name__}")
    available = set(data.keys())
    missing = [name for name in names if name not in available]
    if missing:
        raise DriftInputError(f"missing column(s): {', '.join(missing)}")
    return lambda index: data[names[index]]


def n_rows(data: Any, names: Sequence[str]) -> int:
    """The number of rows of a matrix or of equally long named columns."""
    if isinstance(data, np.ndarray):
        return int(data.shape[0])
    lengths = {len(data[name]) for name in names}
    if len(lengths) > 1:
        raise DriftInputError(f"columns have different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def input_dtype(data: Any, names: Sequence[str]) -> np.dtype[Any]:
    """The common dtype of the named columns."""
    if isinstance(data, np.ndarray):
        return np.dtype(data.dtype)
    dtypes = {np.asarray(data[name][:1]).dtype for name in names}
    return np.dtype(np.result_type(*dtypes)) if dtypes else np.dtype(np.float64)


def sorted_valid(column: Any, dtype: np.dtype[Any]) -> tuple[np.ndarray, int]:
    """A sorted copy of ``column`` in ``dtype`` without NaNs, and the NaN count."""
    try:
        values = np.array(column, dtype=dtype)  # one contiguous copy, sorted in place
    except (TypeError, ValueError) as error:
        raise DriftInputError(f"non-numeric values: {error}") from error
    if values.ndim != 1:
        raise DriftInputError(f"expected a 1-D column, got shape {values.shape}")
    values.sort()
    n_valid = values.size
    if n_valid and np.isnan(values[-1]):  # NaNs sort last
        n_valid = int(np.searchsorted(values, values.dtype.type(np.nan), "left"))
    return values[:n_valid], values.size - n_valid


MISSING_TOKENS = frozenset({"", "na", "nan", "null", "none", "n/a"})
"""Text cells that are missing values."""


def level_codes(column: Any, labels: Sequence[str]) -> np.ndarray:
    """A string category's column as ``float64`` codes: a level's index in ``labels``,
    NaN for a null (None, NaN, an empty or ``NA`` cell), ``labels.index("other")`` for
    another value (``-1`` without an ``"other"`` level: it counts as unseen). A numeric
    column, or a number among nulls (a coded column with missing values), is taken as
    codes already."""
    if hasattr(column, "to_numpy"):
        column = column.to_numpy(dtype=object)
    values = np.asarray(column)
    if values.dtype.kind in "biuf":
        return values.astype(np.float64).reshape(-1)
    index = {label: float(code) for code, label in enumerate(labels)}
    other = index.get("other", -1.0)

    def code(value: Any) -> float:
        if value is None or (isinstance(value, float) and value != value):
            return np.nan
        if isinstance(value, str):
            if value in index:
                return index[value]
            return np.nan if value.strip().lower() in MISSING_TOKENS else other
        if type(value).__name__ in ("NAType", "NaTType"):
            return np.nan
        if isinstance(value, int | float | np.integer | np.floating) and not isinstance(
            value, bool | np.bool_
        ):
            return float(value)  # a code already, as in an all-numeric column
        return index.get(str(value), other)

    return np.fromiter((code(v) for v in values.reshape(-1)), dtype=np.float64, count=values.size)
