"""The Feast helpers that need no Feast: validation, references, the repository folder
(the rest runs against Feast's local provider in integration/test_feature_store_feast.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from schema_support import EVENTS_SCHEMA, events, write_repo

from mlgen_runtime import feature_store
from mlgen_runtime.dataset import DataError
from mlgen_runtime.schema import Dataset, Feature

FEATURES = (
    Feature("speed", "numeric", 0, 200, "km/h"),
    Feature("shift", "categorical", 0, 2, "0 = day, 1 = evening, 2 = night"),
)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"speed": np.array([10.0, 55.5, 200.0], np.float32), "shift": [0, 2, 1], "label": [0, 1, 1]}
    )


def test_training_matrix_types_and_order() -> None:
    X, y = feature_store.training_matrix(_frame()[["label", "shift", "speed"]], FEATURES, "label")
    assert X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(X, [[10.0, 0], [55.5, 2], [200.0, 1]])
    np.testing.assert_array_equal(y, [0, 1, 1])


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("speed", np.nan, "1 null values"),
        ("speed", 250.0, "outside \\[0, 200\\]"),
        ("shift", -1, "outside"),
        ("shift", 1.5, "unknown codes"),  # in range, but not one of the integer codes
    ],
)
def test_validation_rejects_bad_values(column: str, value: float, message: str) -> None:
    frame = _frame().astype({column: "float64"})
    frame.loc[1, column] = value
    with pytest.raises(feature_store.FeatureDataError, match=message):
        feature_store.validate_frame(frame, FEATURES)


def test_validation_rejects_a_missing_column() -> None:
    with pytest.raises(feature_store.FeatureDataError, match="'shift' is missing"):
        feature_store.validate_frame(_frame().drop(columns="shift"), FEATURES)


def test_feature_refs_keep_the_order() -> None:
    assert feature_store.feature_refs("v", ["b", "a"]) == ["v:b", "v:a"]


def test_repo_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(feature_store.REPO_ENV, raising=False)
    assert feature_store.repo_dir(tmp_path / "feature_repo") == tmp_path / "feature_repo"
    monkeypatch.setenv(feature_store.REPO_ENV, str(tmp_path / "other"))
    assert feature_store.repo_dir(tmp_path / "feature_repo") == (tmp_path / "other").resolve()


def test_missing_definitions(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no Feast definitions"):
        feature_store.load_definitions(tmp_path)


def test_the_command_writes_the_repositorys_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written: list[tuple[int, int]] = []

    def write_source(rows: int, seed: int) -> Path:
        written.append((rows, seed))
        return tmp_path

    command = partial(
        feature_store.main, prog="fs", repo=tmp_path, write_source=write_source, rows=5
    )
    assert command(["write-source"]) == 0
    assert command(["write-source", "--rows", "9", "--seed", "1"]) == 0
    assert written == [(5, 42), (9, 1)]
    assert capsys.readouterr().out == f"wrote {tmp_path}\n" * 2
    with pytest.raises(SystemExit) as usage:
        command([])
    assert usage.value.code == 2


NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
DEMO_SCHEMA = EVENTS_SCHEMA.replace("source: data/events.parquet", 'source: ""').replace(
    EVENTS_SCHEMA[EVENTS_SCHEMA.index("  - name: island") : EVENTS_SCHEMA.index("  - name: plan")],
    "",
)
"""The demo: no source, and only number and integer-code features (what a generator draws)."""


def _store(tmp_path: Path, table: pd.DataFrame | None, schema: str = EVENTS_SCHEMA) -> Any:
    """A repository at ``tmp_path`` with ``table`` and its SchemaFeatureStore; its demo
    generator draws 0, 1 or 2 for every feature."""
    parsed = write_repo(tmp_path, table, schema)

    def synthetic(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        X = rng.integers(0, 3, (rows, parsed.width)).astype(np.float32)
        return X, np.arange(rows, dtype=np.int64) % 2

    return feature_store.SchemaFeatureStore(parsed, tmp_path, synthetic=synthetic)


@pytest.fixture(autouse=True)
def _no_repo_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(feature_store.REPO_ENV, raising=False)


def test_the_entity_key_is_the_entity_column_as_an_identifier() -> None:
    assert feature_store.entity_key(Dataset(entity=None)) == "row_id"
    assert feature_store.entity_key(Dataset(entity="customer_id")) == "customer_id"
    assert feature_store.entity_key(Dataset(entity="Customer ID")) == "customer_id"


def test_a_parquet_table_with_entity_and_timestamp_is_read_in_place(tmp_path: Path) -> None:
    store = _store(tmp_path, events())
    assert store.in_place and store.created_column is None
    assert store.timestamp_field == "event_timestamp" and store.entity_key == "customer_id"
    assert store.source_path() == str(tmp_path / "data" / "events.parquet")
    assert store.write_source(0, 0, NOW) == tmp_path / "feature_repo" / "data"
    assert not (store.data_dir() / store.source_file).exists()  # Feast reads the table
    labels = pd.read_parquet(store.data_dir() / store.LABELS_FILE)
    assert labels.columns.tolist() == ["customer_id", "event_timestamp", "churned"]
    pd.testing.assert_series_equal(labels["event_timestamp"], events()["event_timestamp"])
    assert labels["churned"].tolist() == [0, 1, 0, 1, 0]  # positive_class "yes"


@pytest.mark.parametrize("reason", ["timestamps as text", "a column named otherwise"])
def test_otherwise_a_typed_copy_is_written(tmp_path: Path, reason: str) -> None:
    table, schema = events(), EVENTS_SCHEMA
    if reason == "timestamps as text":
        table = table.assign(event_timestamp=table["event_timestamp"].astype(str))
    else:
        table = table.rename(columns={"tenure": "tenure months"})
        schema = schema.replace("name: tenure\n", "name: tenure\n    column: tenure months\n")
    store = _store(tmp_path, table, schema)
    assert not store.in_place and store.created_column == "created"
    store.write_source(0, 0, NOW)
    assert store.source_path() == str(store.data_dir() / "customer_features.parquet")
    copy = pd.read_parquet(store.source_path())
    expected = ["customer_id", "tenure", "island", "plan", "event_timestamp", "created"]
    assert copy.columns.tolist() == expected
    kinds = {name: copy[name].dtype.kind for name in ("tenure", "island", "plan")}
    assert kinds == {"tenure": "f", "island": "O", "plan": "i"}  # as the Feast fields say
    assert copy["island"].tolist() == ["Biscoe", "Dream", None, "Mars", "Biscoe"]  # raw text
    assert (copy["created"] == pd.Timestamp(NOW)).all()


def test_the_demo_source_has_history_and_later_labels(tmp_path: Path) -> None:
    store = _store(tmp_path, None, DEMO_SCHEMA)
    assert not store.in_place and store.ttl.days == 30
    store.write_source(50, 3, NOW)
    features = pd.read_parquet(store.data_dir() / store.source_file)
    labels = pd.read_parquet(store.data_dir() / store.LABELS_FILE)
    assert features["customer_id"].tolist() == labels["customer_id"].tolist() == list(range(50))
    age = pd.Timestamp(NOW) - features["event_timestamp"]
    assert age.min() > store.LABEL_DELAY and age.max() < pd.Timedelta(days=store.HISTORY_DAYS)
    delay = labels["event_timestamp"] - features["event_timestamp"]
    assert (delay == store.LABEL_DELAY).all()
    assert labels["churned"].tolist() == [index % 2 for index in range(50)]
    assert features["plan"].dtype == np.int64 and set(features["plan"]) <= {0, 1, 2}


def test_the_demo_needs_a_generator(tmp_path: Path) -> None:
    store = feature_store.SchemaFeatureStore(write_repo(tmp_path, None, DEMO_SCHEMA), tmp_path)
    with pytest.raises(DataError, match=r"no dataset\.source: set it to the training table"):
        store.write_source(50, 3, NOW)


@pytest.mark.parametrize(
    ("schema_change", "columns", "message"),
    [
        (
            None,
            {"event_timestamp": pd.Timestamp("2026-01-01", tz="UTC")},
            "2 rows repeat an (customer_id, event_timestamp) pair of an earlier row",
        ),
        (
            ("timestamp: event_timestamp", "timestamp: null"),
            {},
            "entity column 'customer_id' repeats values but features.yaml names no timestamp",
        ),
        (  # a copy (timestamps as text) is checked as it is written
            None,
            {
                "tenure": [1.0, 400.0, 3.0, 4.0, 5.0],
                "event_timestamp": [f"2026-01-0{day}" for day in range(1, 6)],
            },
            "data/events.parquet: ",
        ),
    ],
)
def test_a_table_feast_cannot_hold_is_one_line_and_nothing_is_written(
    tmp_path: Path,
    schema_change: tuple[str, str] | None,
    columns: dict[str, object],
    message: str,
) -> None:
    schema = EVENTS_SCHEMA.replace(*schema_change) if schema_change else EVENTS_SCHEMA
    store = _store(tmp_path, events(**columns), schema)
    with pytest.raises(DataError) as refused:
        store.write_source(0, 0, NOW)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)
    assert not store.data_dir().exists()


def test_the_feature_repository_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path, events())
    assert store.repo_dir() == tmp_path / "feature_repo"
    monkeypatch.setenv(feature_store.REPO_ENV, str(tmp_path / "copy"))
    assert store.data_dir() == (tmp_path / "copy" / "data").resolve()
    view = "customer_features"
    assert store.feature_refs() == [f"{view}:tenure", f"{view}:island", f"{view}:plan"]
