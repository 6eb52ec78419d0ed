"""Body of benchmarks/production.py, run in the runtime's environment with every extra.

Starts a real PostgreSQL and Redis (mlgen_runtime.servers), then, alternating:
* online lookups of Feast features for 1 entity and for a batch of 64, from a Redis
  online store (the production profile) and from SQLite (the local one), same data;
* train + register: fit a logistic regression, export its weights, log and register it
  in MLflow (mlgen_runtime.registry.log_and_register) on PostgreSQL and on SQLite.
Writes the raw timings as JSON (milliseconds for lookups, seconds for registration).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from mlgen_runtime import feature_store, registry, servers

DEFINITIONS = """\
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float32

customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
customer_features = FeatureView(
    name="customer_features",
    entities=[customer],
    ttl=timedelta(days=30),
    schema=[Field(name=f"f{i}", dtype=Float32) for i in range(6)],
    online=True,
    source=FileSource(
        name="customers",
        path=str(Path(__file__).parent / "data" / "customers.parquet"),
        timestamp_field="event_timestamp",
    ),
)
"""
ONLINE = {
    "sqlite": "online_store:\n  type: sqlite\n  path: data/online.db\n",
    "redis": "online_store:\n  type: redis\n  connection_string: {redis}\n",
}
MODELING = """\
import json
from pathlib import Path

import numpy as np


def load_exported(path):
    weights = np.asarray(json.loads(Path(path).read_text())["weights"])
    return lambda matrix: 1.0 / (1.0 + np.exp(-(matrix.astype(np.float64) @ weights)))
"""


def feature_repo(root: Path, kind: str, cache: servers.Redis, rows: int) -> object:
    (root / "data").mkdir(parents=True)
    config = f"project: bench_{kind}\nprovider: local\nregistry: data/registry.db\n"
    config += ONLINE[kind].format(redis=cache.connection_string)
    config += "offline_store:\n  type: file\nentity_key_serialization_version: 3\n"
    (root / "feature_store.yaml").write_text(config, encoding="utf-8")
    (root / "definitions.py").write_text(DEFINITIONS, encoding="utf-8")
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({f"f{i}": rng.random(rows).astype(np.float32) for i in range(6)})
    frame.insert(0, "customer_id", np.arange(rows, dtype=np.int64))
    frame["event_timestamp"] = datetime.now(UTC) - timedelta(hours=1)
    frame.to_parquet(root / "data" / "customers.parquet", index=False)
    store = feature_store.apply(root)
    feature_store.materialize(store)
    return store


def lookups(stores: dict[str, object], rows: int, repeats: int) -> dict[str, list[float]]:
    refs = feature_store.feature_refs("customer_features", [f"f{i}" for i in range(6)])
    rng = np.random.default_rng(2)
    timings: dict[str, list[float]] = {}
    for batch in (1, 64):
        for index in range(repeats):
            order = list(stores) if index % 2 == 0 else list(stores)[::-1]
            keys = [int(key) for key in rng.integers(0, rows, batch)]
            for kind in order:
                started = time.perf_counter()
                found = feature_store.online_features(stores[kind], refs, "customer_id", keys)
                elapsed = (time.perf_counter() - started) * 1000
                assert found["f0"][0] is not None
                timings.setdefault(f"{kind} batch {batch}", []).append(elapsed)
    return timings


def train_and_register(uri: str, folder: Path, package: Path) -> float:
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20_000, 6))
    y = (X @ np.arange(1, 7) + rng.normal(size=20_000) > 0).astype(int)
    model = LogisticRegression(fit_intercept=False).fit(X, y)
    artifact = folder / "model.json"
    artifact.write_text(json.dumps({"weights": model.coef_[0].tolist()}), encoding="utf-8")
    registry.log_and_register(
        "bench",
        artifact,
        {"roc_auc": float(model.score(X, y)), "rows": 20_000},
        {"seed": 3},
        metric="roc_auc",
        loader="bench_model.modeling:load_exported",
        features=[f"f{i}" for i in range(6)],
        code_paths=[package],
        pip_requirements=["numpy"],
        tracking_uri=uri,
    )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--registrations", type=int, default=3)
    args = parser.parse_args()
    package = args.scratch / "src" / "bench_model"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "modeling.py").write_text(MODELING, encoding="utf-8")
    sys.path.insert(0, str(package.parent))
    with servers.postgres() as pg, servers.redis() as cache:
        stores = {
            kind: feature_repo(args.scratch / kind, kind, cache, args.entities)
            for kind in ("redis", "sqlite")
        }
        timings = lookups(stores, args.entities, args.lookups)
        uris = {
            "postgresql": pg.url(pg.create_database("bench")),
            "sqlite": f"sqlite:///{args.scratch / 'mlflow.db'}",
        }
        os.environ["MLGEN_ARTIFACT_LOCATION"] = (args.scratch / "mlartifacts").as_uri()
        for uri in uris.values():  # untimed warm-up: schema creation, imports
            train_and_register(uri, args.scratch, package)
        for index in range(args.registrations):
            for kind in list(uris) if index % 2 == 0 else list(uris)[::-1]:
                seconds = train_and_register(uris[kind], args.scratch, package)
                timings.setdefault(f"train+register {kind}", []).append(seconds)
    args.out.write_text(json.dumps({"timings": timings}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
