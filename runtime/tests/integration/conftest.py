"""One real PostgreSQL and one real Redis for the whole integration session
(:mod:`mlgen_runtime.servers`): tests of the production profile take a fresh database
(or Redis database number) each, so they stay independent without a server per test."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlgen_runtime import servers
from mlgen_runtime.testing.fixtures import postgres, redis  # noqa: F401  (session servers)

_NAMES = itertools.count()
DEFINITIONS = """\
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float32

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
driver_stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    ttl=timedelta(days=30),
    schema=[Field(name="speed", dtype=Float32)],
    online=True,
    source=FileSource(
        name="driver_source",
        path=str(Path(__file__).parent / "data" / "drivers.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    ),
)
"""
LOCAL_CONFIG = """\
project: runtime_test
provider: local
registry: data/registry.db
online_store:
  type: sqlite
  path: data/online_store.db
offline_store:
  type: file
entity_key_serialization_version: 3
"""


def driver_repo(root: Path, local: str = LOCAL_CONFIG, production: str | None = None) -> Path:
    """A feature repository with one feature view ``driver_stats`` (feature ``speed``) on
    ``data/drivers.parquet``, configured by ``local`` and ``production``."""
    (root / "data").mkdir(parents=True)
    (root / "feature_store.yaml").write_text(local, encoding="utf-8")
    if production is not None:
        (root / "feature_store.production.yaml").write_text(production, encoding="utf-8")
    (root / "definitions.py").write_text(DEFINITIONS, encoding="utf-8")
    return root


def write_drivers(
    repo: Path, drivers: Sequence[int], times: Sequence[datetime], append: bool = False
) -> None:
    """Write (or append) rows of ``drivers`` whose event and ingestion time are ``times``;
    speed is ten times the row's position."""
    path = repo / "data" / "drivers.parquet"
    start = len(pd.read_parquet(path)) if append else 0
    rows = pd.DataFrame(
        {
            "driver_id": np.asarray(drivers, np.int64),
            "speed": np.arange(start + 1, start + len(drivers) + 1, dtype=np.float32) * 10,
            "event_timestamp": pd.to_datetime(list(times), utc=True),
            "created": pd.to_datetime(list(times), utc=True),
        }
    )
    if append:
        rows = pd.concat([pd.read_parquet(path), rows], ignore_index=True)
    rows.to_parquet(path, index=False)


@pytest.fixture
def postgres_url(postgres: servers.Postgres) -> str:  # noqa: F811 (the fixture)
    """A SQLAlchemy URL of a new, empty database on the session's PostgreSQL."""
    return postgres.url(postgres.create_database(f"test_{next(_NAMES)}"))
