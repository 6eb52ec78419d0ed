"""mlgen_runtime.dataset: a schema's table read, checked and labelled, every failure one
line naming the column and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyarrow")

from schema_support import EVENTS_SCHEMA, events, write_repo

from mlgen_runtime import dataset
from mlgen_runtime.dataset import DataError
from mlgen_runtime.schema import Dataset, FeatureSchema, parse_schema
from mlgen_runtime.training import main

CSV_SCHEMA = (
    EVENTS_SCHEMA.replace("events.parquet", "events.csv")
    .replace("format: parquet", "format: csv")
    .replace("name: tenure\n", "name: tenure\n    column: tenure months\n")
)
"""The events as CSV, with a feature column named otherwise than its feature."""


def _csv_repo(root: Path, schema: str = CSV_SCHEMA, **columns: object) -> FeatureSchema:
    """A repository with the events as ``data/events.csv``; ``schema`` parsed."""
    write_repo(root, events(**columns).rename(columns={"tenure": "tenure months"}), CSV_SCHEMA)
    return parse_schema(schema)


def test_the_source_resolves_against_the_repository_root(tmp_path: Path) -> None:
    for source, expected in [
        ("data/events.csv", str(tmp_path / "data" / "events.csv")),
        ("/srv/events.parquet", "/srv/events.parquet"),
        ("s3://bucket/events.parquet", "s3://bucket/events.parquet"),
        ("", ""),
    ]:
        assert dataset.source_uri(Dataset(source=source), tmp_path) == expected


def test_the_table_becomes_the_labelled_matrix(tmp_path: Path) -> None:
    schema = _csv_repo(tmp_path)
    frame = dataset.load_table(schema, tmp_path)
    assert "tenure" in frame.columns and "tenure months" not in frame.columns
    X, y = dataset.training_set(schema, tmp_path)
    assert X.dtype == np.float32 and y.dtype == np.int64
    expected = [[3, 0, 0], [4, 1, 1], [np.nan, np.nan, 2], [50, 2, 1], [51, 0, 0]]
    np.testing.assert_array_equal(X, expected)  # "Mars" is "other" (unknown: other)
    np.testing.assert_array_equal(y, [0, 1, 0, 1, 0])


@pytest.mark.parametrize(
    ("values", "positive_class", "expected"),
    [
        ([1, 0, 1], "1", [1, 0, 1]),
        ([1.0, 0.0, 0.0], "1", [1, 0, 0]),  # a float column of integers, as CSV may read it
        ([True, False, False], "true", [1, 0, 0]),
        (["M", "B", "B"], "B", [0, 1, 1]),
    ],
)
def test_labels_are_the_positive_class_as_text(
    values: list[object], positive_class: str, expected: list[int]
) -> None:
    frame = pd.DataFrame({"y": values})
    labels = dataset.labels(frame, Dataset(label="y", positive_class=positive_class))
    assert labels.dtype == np.int64 and labels.tolist() == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([1, None, 0], "label column 'y' has 1 null values; drop those rows from the table"),
        ([0, 0, 0], "positive_class '1' matches no row (values: 0); the label needs two classes"),
        ([1, 1, 1], "positive_class '1' matches every row (values: 1)"),
    ],
)
def test_a_label_needs_two_classes_and_no_nulls(values: list[object], message: str) -> None:
    with pytest.raises(DataError) as refused:
        dataset.labels(pd.DataFrame({"y": values}), Dataset(label="y"))
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "label: churned",
            "label: left",
            "dataset.label: column 'left' is not in data/events.csv (columns: customer_id, "
            "event_timestamp, tenure months, island, plan, churned); fix features.yaml",
        ),
        (
            "timestamp: event_timestamp",
            "timestamp: time",
            "dataset.timestamp: column 'time' is not in data/events.csv",
        ),
        (
            "column: tenure months",
            "column: tenure",
            "feature 'tenure': column 'tenure' is not in data/events.csv; set its column"
            " in features.yaml, or remove the feature",
        ),
        ("source: data/events.csv", "source: data/none.csv", "none.csv: no such file; check the"),
        ('positive_class: "yes"', 'positive_class: "Yes"', "matches no row (values: no, yes)"),
        ("source: data/events.csv", 'source: ""', "no dataset.source: this repository trains"),
    ],
)
def test_a_table_that_does_not_match_is_one_line(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    schema = _csv_repo(tmp_path, CSV_SCHEMA.replace(old, new))
    with pytest.raises(DataError) as refused:
        dataset.training_set(schema, tmp_path)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_bad_value_names_the_source_and_feature(tmp_path: Path) -> None:
    schema = _csv_repo(tmp_path, tenure=[3.0, 400.0, None, 50.0, 51.0])
    with pytest.raises(DataError, match=r"^data/events.csv: .*tenure"):
        dataset.training_set(schema, tmp_path)


def test_the_training_command_prints_a_data_error_as_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MLGEN_PROFILE", raising=False)
    schema = _csv_repo(tmp_path, CSV_SCHEMA.replace("column: tenure months", "column: age"))

    def train(
        out_dir: Path, rows: int, seed: int, source: str, register: bool
    ) -> dict[str, object]:
        dataset.training_set(schema, tmp_path)
        raise AssertionError("training_set raised: nothing is trained or written")

    out = tmp_path / "artifacts"
    status = main(
        train, ["--source", "synthetic"], prog="t", out=out, rows=500, seed=1, min_rows=10
    )
    assert status == 1 and not out.exists()
    assert capsys.readouterr().err == (
        "error: feature 'tenure': column 'age' is not in data/events.csv; set its"
        " column in features.yaml, or remove the feature\n"
    )
