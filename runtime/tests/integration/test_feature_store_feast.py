"""The Feast helpers against Feast's local provider: a feature repository written for
the test (SQLite online store, Parquet offline store), applied, joined point-in-time,
materialized and read online."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import LOCAL_CONFIG as CONFIG
from schema_support import EVENTS_SCHEMA, events, write_repo

from mlgen_runtime import feature_store
from mlgen_runtime.dataset import training_set
from mlgen_runtime.schema import Feature

FEATURES = (
    Feature("speed", "numeric", 0, 200, "km/h"),
    Feature("shift", "categorical", 0, 2, "0 = day, 1 = evening, 2 = night"),
)
REFS = feature_store.feature_refs("driver_stats", [feature.name for feature in FEATURES])
NOW = datetime.now(UTC).replace(microsecond=0)
EARLY, LATE = NOW - timedelta(days=3), NOW - timedelta(days=1)
DEFINITIONS = """\
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float32, Int64

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
source = FileSource(
    name="driver_source",
    path=str(Path(__file__).parent / "data" / "drivers.parquet"),
    timestamp_field="event_timestamp",
)
driver_stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    ttl=timedelta(days=30),
    schema=[Field(name="speed", dtype=Float32), Field(name="shift", dtype=Int64)],
    online=True,
    source=source,
)
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A feature repository: drivers 1 and 2 each have an early and a late feature row."""
    root = tmp_path_factory.mktemp("feast") / "feature_repo"
    (root / "data").mkdir(parents=True)
    (root / "feature_store.yaml").write_text(CONFIG, encoding="utf-8")
    (root / "definitions.py").write_text(DEFINITIONS, encoding="utf-8")
    rows = pd.DataFrame(
        {
            "driver_id": np.array([1, 1, 2, 2], np.int64),
            "speed": np.array([10.0, 20.0, 30.0, 40.0], np.float32),
            "shift": np.array([0, 1, 2, 0], np.int64),
            "event_timestamp": [EARLY, LATE, EARLY, LATE],
        }
    )
    rows.to_parquet(root / "data" / "drivers.parquet", index=False)
    return root


@pytest.fixture(scope="module")
def applied(repo: Path) -> object:
    return feature_store.apply(repo)


def test_apply_registers_what_the_definitions_declare(repo: Path, applied: object) -> None:
    declared = feature_store.definitions(feature_store.load_definitions(repo))
    names = {type(item).__name__ for item in declared}
    assert names == {"Entity", "FeatureView"}
    store = feature_store.store(repo)
    assert [field.name for field in store.get_feature_view("driver_stats").features] == [
        "speed",
        "shift",
    ]
    assert store.get_entity("driver").join_key == "driver_id"


def test_training_frame_is_point_in_time_correct(applied: object) -> None:
    middle = NOW - timedelta(days=2)
    labels = pd.DataFrame(
        {
            "driver_id": [2, 1, 1, 2],
            "event_timestamp": [middle, middle, NOW, EARLY - timedelta(hours=1)],
            "label": [0, 1, 0, 1],
        }
    )
    frame = feature_store.training_frame(applied, labels, REFS, "driver_id")
    assert list(frame["driver_id"]) == [1, 1, 2]  # sorted by the entity key, stably
    by_time = frame.set_index(["driver_id", "event_timestamp"])
    assert by_time.loc[(1, middle), "speed"] == 10.0  # the early row: the late one is future
    assert by_time.loc[(1, NOW), "speed"] == 20.0
    assert by_time.loc[(2, middle), "speed"] == 30.0
    # A label observed before its entity had any feature row gets no features: Feast's
    # file offline store drops it (stores that keep it give nulls, which
    # training_matrix refuses); it never sees a value from its future.
    assert (2, EARLY - timedelta(hours=1)) not in by_time.index
    X, y = feature_store.training_matrix(frame, FEATURES, "label")
    assert X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(X, [[10, 0], [20, 1], [30, 2]])
    np.testing.assert_array_equal(y, [1, 0, 0])


def test_materialize_then_read_online(applied: object) -> None:
    feature_store.materialize(applied)
    online = feature_store.online_features(applied, REFS, "driver_id", [2, 1, 99])
    assert online["speed"][:2] == pytest.approx([40.0, 20.0]) and online["speed"][2] is None
    assert online["shift"] == [0, 1, None]  # 99 is unknown to the store


SCHEMA_DEFINITIONS = """\
from pathlib import Path

from feast import Entity, FeatureView, Field, FileSource, ValueType
from mlgen_runtime.feature_store import SchemaFeatureStore, field_dtype
from mlgen_runtime.schema import load_schema

ROOT = Path(__file__).resolve().parent.parent
FEAST = SchemaFeatureStore(load_schema(ROOT / "features.yaml"), ROOT)
entity = Entity(
    name=FEAST.entity_name, join_keys=[FEAST.entity_key], value_type=ValueType.INT64
)
view = FeatureView(
    name=FEAST.feature_view,
    entities=[entity],
    ttl=FEAST.ttl,
    schema=[Field(name=f.name, dtype=field_dtype(f)) for f in FEAST.schema.features],
    online=True,
    source=FileSource(
        name="events",
        path=FEAST.source_path(),
        timestamp_field=FEAST.timestamp_field,
        created_timestamp_column=FEAST.created_column or "",
    ),
)
"""


@pytest.fixture(scope="module", params=["parquet", "csv"], ids=["in place", "a copy"])
def schema_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> feature_store.SchemaFeatureStore:
    """A repository whose ``features.yaml`` names the events table (text levels, nulls, an
    unknown level): Parquet is read in place, CSV through the written copy. Its source
    written and its definitions applied."""
    assert feature_store.REPO_ENV not in os.environ
    root = tmp_path_factory.mktemp("schema_repo")
    (root / "feature_repo").mkdir()
    (root / "feature_repo" / "feature_store.yaml").write_text(CONFIG, encoding="utf-8")
    (root / "feature_repo" / "definitions.py").write_text(SCHEMA_DEFINITIONS, encoding="utf-8")
    schema = EVENTS_SCHEMA.replace("parquet", request.param)  # the source and its format
    store = feature_store.SchemaFeatureStore(write_repo(root, events(), schema), root)
    assert store.in_place == (request.param == "parquet")
    store.write_source(0, 0)
    store.apply()
    return store


def _sorted_rows(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Labelled rows in a canonical order (NaN sorts last)."""
    rows = np.column_stack([X.astype(np.float64), y])
    return rows[np.lexsort(rows.T[::-1])]


def test_the_point_in_time_join_is_the_schemas_training_set(
    schema_store: feature_store.SchemaFeatureStore,
) -> None:
    X, y = schema_store.training_data()
    np.testing.assert_array_equal(
        _sorted_rows(X, y), _sorted_rows(*training_set(schema_store.schema, schema_store.root))
    )
    assert schema_store.training_cutoff() is not None


def test_the_online_store_serves_each_entitys_newest_row(
    schema_store: feature_store.SchemaFeatureStore,
) -> None:
    schema_store.materialize()
    online = schema_store.online_features(np.array([1, 2, 3, 4]))
    assert online["tenure"] == [4.0, None, 51.0, None]  # each customer's newest event
    assert online["island"] == ["Dream", None, "Biscoe", None]
    assert online["plan"] == [1, 2, 0, None]  # customer 4 is unknown to the store
