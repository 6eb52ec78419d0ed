"""Reading a window of production inputs from a CSV or Parquet file."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlgen_runtime.drift._columns import MISSING_TOKENS, DriftInputError, level_codes

_BOOLEANS = {"true": 1.0, "false": 0.0}


def read_window(
    path: Path, names: Sequence[str], labels: Mapping[str, Sequence[str]] | None = None
) -> dict[str, np.ndarray]:
    """Read the named columns of a CSV (header row) or Parquet file as ``float64``.

    Other columns are ignored. Empty cells and ``NA``/``NaN``/``null`` are missing values
    (NaN), ``true``/``false`` are 1 and 0. A column in ``labels`` (a category with string
    levels: its levels) holds text, read as codes
    (:func:`~mlgen_runtime.drift._columns.level_codes`). Parquet needs ``pyarrow`` (or
    ``pandas`` with a Parquet engine).

    Raises:
        DriftInputError: the file cannot be read, a column is missing or holds a value
            that is not a number, or Parquet support is not installed.
    """
    path = Path(path)
    if not path.is_file():
        raise DriftInputError(f"no such file: {path}")
    labels = dict(labels or {})
    if path.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet(path, names, labels)
    return _read_csv(path, names, labels)


def _read_csv(
    path: Path, names: Sequence[str], labels: Mapping[str, Sequence[str]]
) -> dict[str, np.ndarray]:
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            header = next(csv.reader(stream), None)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DriftInputError(f"cannot read {path}: {error}") from error
    if not header:
        raise DriftInputError(f"{path} is empty (a header row is required)")
    header = [cell.strip() for cell in header]
    missing = [name for name in names if name not in header]
    if missing:
        raise DriftInputError(f"{path}: missing column(s): {', '.join(missing)}")
    indices = [header.index(name) for name in names]
    try:  # fast path: NumPy's C parser (it fails on empty cells and text)
        matrix = np.loadtxt(
            path,
            delimiter=",",
            skiprows=1,
            usecols=indices,
            dtype=np.float64,
            ndmin=2,
            encoding="utf-8",
        )
        return {name: matrix[:, i] for i, name in enumerate(names)}
    except ValueError:
        pass
    columns: list[list[Any]] = [[] for _ in names]
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.reader(stream)
        next(reader)
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            for values, index, name in zip(columns, indices, names, strict=True):
                cell = row[index].strip() if index < len(row) else ""
                if name in labels:
                    values.append(cell)
                    continue
                if cell.lower() in MISSING_TOKENS:
                    values.append(math.nan)
                    continue
                if cell.lower() in _BOOLEANS:  # a boolean feature's cells
                    values.append(_BOOLEANS[cell.lower()])
                    continue
                try:
                    values.append(float(cell))
                except ValueError:
                    raise DriftInputError(
                        f"{path}:{line}: column {name!r}: {cell!r} is not a number"
                    ) from None
    return {
        name: level_codes(values, labels[name])
        if name in labels
        else np.asarray(values, dtype=np.float64)
        for name, values in zip(names, columns, strict=True)
    }


def _read_parquet(
    path: Path, names: Sequence[str], labels: Mapping[str, Sequence[str]]
) -> dict[str, np.ndarray]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        pq = None
    frame: Any = None
    try:
        if pq is not None:
            available = set(pq.read_schema(path).names)
        else:
            import pandas as pd

            frame = pd.read_parquet(path)
            available = set(frame.columns)
    except ImportError:
        raise DriftInputError(
            f"reading Parquet ({path}) needs pyarrow: pip install pyarrow"
        ) from None
    except Exception as error:  # any reader failure is bad input
        raise DriftInputError(f"cannot read {path}: {error}") from error
    missing = [name for name in names if name not in available]
    if missing:
        raise DriftInputError(f"{path}: missing column(s): {', '.join(missing)}")
    try:
        if pq is not None:
            import pyarrow as pa

            table = pq.read_table(path, columns=list(names))
            return {
                name: level_codes(table.column(name).to_pylist(), labels[name])
                if name in labels
                else np.asarray(
                    table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False),
                    dtype=np.float64,
                )
                for name in names
            }
        return {
            name: level_codes(frame[name], labels[name])
            if name in labels
            else frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
            for name in names
        }
    except (TypeError, ValueError) as error:
        raise DriftInputError(f"{path}: non-numeric values: {error}") from error
