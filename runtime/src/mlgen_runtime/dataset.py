"""A repository's training table, as its ``features.yaml`` describes it.

The schema's ``dataset:`` section names the table (Parquet or CSV; a local path, relative
to the repository root, or a URL such as ``s3://...``), its label column and positive
class; each feature names its column. These functions read that table and turn it into
the labelled matrix a model trains on:

* :func:`source_uri`: where the table is (a relative path made absolute);
* :func:`load_table`: the table, every column the schema names checked, the feature
  columns renamed to the feature names;
* :func:`labels`: 1 where the label is the positive class, else 0;
* :func:`matrix`: the coded input matrix (``float32``, category codes, ``NaN`` for nulls);
* :func:`training_set`: ``(X, y)`` of the whole table.

Every failure is one :class:`DataError` line naming the column (or key) and the fix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlgen_runtime.schema import Dataset, FeatureSchema
from mlgen_runtime.table import TableError, read_table
from mlgen_runtime.training import TrainingError

__all__ = [
    "DataError",
    "dataset_of",
    "labels",
    "load_table",
    "matrix",
    "source_uri",
    "training_set",
]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class DataError(TrainingError, ValueError):
    """The table does not match ``features.yaml``; one line naming the column and the fix.

    A :class:`~mlgen_runtime.training.TrainingError`: the training command prints it as
    one line and exits 1, with nothing written.
    """


def dataset_of(schema: FeatureSchema) -> Dataset:
    """The schema's ``dataset:`` section; :class:`DataError` when it has none."""
    if schema.dataset is None:
        raise DataError("features.yaml has no dataset section: add one naming the table and label")
    return schema.dataset


def source_uri(dataset: Dataset, root: Path) -> str:
    """The table's location: a URL as written, a relative path made absolute against
    ``root`` (the repository root); ``""`` for the demo (no source)."""
    source = dataset.source
    if not source or _URL.match(source):
        return source
    path = Path(source)
    return str(path if path.is_absolute() else Path(root) / path)


def load_table(schema: FeatureSchema, root: Path) -> pd.DataFrame:
    """The schema's table, its feature columns renamed to the feature names.

    Raises:
        DataError: the source is not set (the demo), cannot be read, or lacks a column
            the schema names (the message names it and the fix).
    """
    dataset = dataset_of(schema)
    if dataset.is_demo:
        raise DataError("features.yaml has no dataset.source: this repository trains on the demo")
    try:
        frame: pd.DataFrame = read_table(source_uri(dataset, root), dataset.format).to_pandas()
    except TableError as error:
        raise DataError(f"dataset.source: {error}") from None
    roles = {"label": dataset.label, "entity": dataset.entity, "timestamp": dataset.timestamp}
    for role, column in roles.items():
        if column is not None and column not in frame.columns:
            raise DataError(
                f"dataset.{role}: column {column!r} is not in {dataset.source} "
                f"(columns: {', '.join(map(str, frame.columns[:12]))}); fix features.yaml"
            )
    for feature in schema.features:
        if feature.source_column not in frame.columns:
            raise DataError(
                f"feature {feature.name!r}: column {feature.source_column!r} is not in "
                f"{dataset.source}; set its column in features.yaml, or remove the feature"
            )
    renames = {feature.source_column: feature.name for feature in schema.features}
    return frame.rename(columns={old: new for old, new in renames.items() if old != new})


def _label_text(value: Any) -> str:
    """A label value as ``positive_class`` spells it (``true``, ``1`` for ``1.0``)."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def labels(frame: pd.DataFrame, dataset: Dataset) -> np.ndarray:
    """The binary label of each row (``int64``): 1 where the label column is
    ``positive_class``.

    Raises:
        DataError: a null label, or no row of one of the two classes.
    """
    column = frame[dataset.label]
    if column.isna().any():
        raise DataError(
            f"label column {dataset.label!r} has {int(column.isna().sum())} null values; "
            "drop those rows from the table"
        )
    texts = [_label_text(value) for value in column]
    y = np.array([text == dataset.positive_class for text in texts], dtype=np.int64)
    if len(set(y.tolist())) < 2:
        seen = ", ".join(sorted(set(texts))[:5])
        matches = "matches every" if y.size and y.min() == 1 else "matches no"
        raise DataError(
            f"label column {dataset.label!r}: positive_class {dataset.positive_class!r} "
            f"{matches} row (values: {seen}); the label needs two classes: set "
            "positive_class in features.yaml to one of its values"
        )
    return y


def matrix(frame: pd.DataFrame, schema: FeatureSchema) -> np.ndarray:
    """The input matrix of a frame with the feature columns (``float32``, schema order,
    category codes, ``NaN`` for missing values); :class:`DataError` naming a bad column."""
    try:
        return schema.columns_to_matrix(frame)
    except ValueError as error:
        source = schema.dataset.source if schema.dataset is not None else ""
        raise DataError(f"{source or 'data'}: {error}") from None


def training_set(schema: FeatureSchema, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The labelled training set ``(X float32, y int64)`` of the schema's whole table
    (:func:`load_table`, :func:`matrix`, :func:`labels`)."""
    frame = load_table(schema, root)
    return matrix(frame, schema), labels(frame, dataset_of(schema))
