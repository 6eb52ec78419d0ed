"""Feast helpers: open a feature repository, apply its definitions, build a
point-in-time training set, materialize and read online features, and the
``write-source`` / ``apply`` / ``materialize`` command of a repository (:func:`main`).

Needs the ``feast`` extra. The Feast definitions (entities, sources, feature views) stay
in the model repository's ``feature_repo/``; these functions take the repository's
names (feature view, entity key, label) as arguments and import Feast lazily, so a
module that imports this one starts fast. :class:`SchemaFeatureStore` binds them to one
repository: its names, its source data and its training set, all derived from its
``features.yaml``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlgen_runtime import dataset as tables
from mlgen_runtime import profile
from mlgen_runtime.dataset import DataError
from mlgen_runtime.schema import Dataset, Feature, FeatureSchema

REPO_ENV = "FEATURE_REPO_DIR"
"""Environment variable that points at another feature repository (tests, CI)."""


class FeatureDataError(ValueError):
    """Feature values do not match the declared schema."""


def repo_dir(default: Path) -> Path:
    """``$FEATURE_REPO_DIR`` when set, else ``default`` (a folder with feature_store.yaml)."""
    configured = os.environ.get(REPO_ENV)
    return Path(configured).resolve() if configured else Path(default)


def store(repo: Path) -> Any:
    """A ``feast.FeatureStore`` on the repository folder ``repo``, configured by the active
    profile's file (``feature_store.yaml``, or ``feature_store.production.yaml`` with
    ``MLGEN_PROFILE=production``: :func:`mlgen_runtime.profile.feature_store_yaml`)."""
    from feast import FeatureStore

    return FeatureStore(repo_path=str(repo), fs_yaml_file=profile.feature_store_yaml(repo))


def load_definitions(repo: Path, filename: str = "definitions.py") -> ModuleType:
    """Import the repository's Feast definitions file as a module."""
    path = Path(repo) / filename
    spec = importlib.util.spec_from_file_location(f"feast_definitions_{path.stem}", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FileNotFoundError(f"no Feast definitions at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def definitions(module: ModuleType) -> list[Any]:
    """The entities, feature views and feature services a definitions module declares,
    what ``feast apply`` would register from it."""
    from feast import Entity, FeatureService, FeatureView, OnDemandFeatureView

    kinds = (Entity, FeatureView, OnDemandFeatureView, FeatureService)
    return [value for value in vars(module).values() if isinstance(value, kinds)]


def apply(repo: Path, feature_store: Any | None = None) -> Any:
    """Register the repository's definitions (like ``feast apply``); return the store."""
    feature_store = feature_store or store(repo)
    feature_store.apply(definitions(load_definitions(repo)))
    return feature_store


def feature_refs(view: str, names: Iterable[str]) -> list[str]:
    """``view:feature`` references, in the order of ``names``."""
    return [f"{view}:{name}" for name in names]


def validate_frame(frame: pd.DataFrame, features: Sequence[Feature]) -> None:
    """Raise :class:`FeatureDataError` for a missing column, a null in a non-nullable
    feature, a value outside its feature's range or an unknown level or code."""
    _matrix(frame, features)


def _matrix(frame: pd.DataFrame, features: Sequence[Feature]) -> np.ndarray:
    try:
        return FeatureSchema(tuple(features)).columns_to_matrix(frame)
    except ValueError as error:
        raise FeatureDataError(str(error)) from None


def field_kind(feature: Feature) -> Literal["string", "int64", "float64"]:
    """How ``feature``'s source column is stored: ``string`` for text levels, ``int64``
    for integer codes and booleans (``float64`` when nullable: a null is NaN), ``float64``
    for numbers and integers (an integer column is read as doubles)."""
    if feature.string_levels:
        return "string"
    if feature.kind == "categorical" and not feature.nullable:
        return "int64"
    return "float64"


def field_dtype(feature: Feature) -> Any:
    """The Feast type of ``feature``'s field (:func:`field_kind`): ``String``, ``Int64``
    or ``Float64``."""
    from feast import types

    return {"string": types.String, "int64": types.Int64, "float64": types.Float64}[
        field_kind(feature)
    ]


def typed_columns(frame: pd.DataFrame, features: Sequence[Feature]) -> pd.DataFrame:
    """The feature columns of ``frame``, typed as :func:`field_kind` says (nulls kept:
    ``None`` in text columns, NaN in float ones)."""
    out = pd.DataFrame(index=frame.index)
    for feature in features:
        column = frame[feature.name]
        kind = field_kind(feature)
        if kind == "string":
            out[feature.name] = column.astype(object).where(column.notna(), None)
        elif kind == "int64":
            out[feature.name] = column.astype(np.int64)
        else:
            out[feature.name] = pd.to_numeric(column, errors="coerce").astype(np.float64)
    return out


def training_frame(
    feature_store: Any, entity_df: pd.DataFrame, refs: Sequence[str], entity_key: str
) -> pd.DataFrame:
    """Point-in-time join: each row of ``entity_df`` (entity key, ``event_timestamp``,
    labels) with the feature values as they were at its timestamp, sorted by the key.

    A row observed before any feature value of its entity existed gets no features:
    Feast's file offline store drops it, other stores give nulls (which
    :func:`training_matrix` refuses). No row ever sees a value from its future.
    """
    frame = feature_store.get_historical_features(entity_df=entity_df, features=list(refs))
    result: pd.DataFrame = frame.to_df()
    return result.sort_values(entity_key, kind="stable").reset_index(drop=True)


def training_matrix(
    frame: pd.DataFrame, features: Sequence[Feature], label: str
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a training frame and return ``(X float32 in feature order, y int64)``."""
    X = _matrix(frame, features)
    return X, frame[label].to_numpy(dtype=np.int64)


def materialize(feature_store: Any, end: datetime | None = None) -> Any:
    """Load the latest feature values into the online store (``materialize-incremental``
    up to ``end``, default now); return the store."""
    feature_store.materialize_incremental(end_date=end or datetime.now(UTC))
    return feature_store


def online_features(
    feature_store: Any, refs: Sequence[str], entity_key: str, keys: Iterable[Any]
) -> dict[str, list[Any]]:
    """The latest values of ``refs`` for some entities, read from the online store, by
    feature name (``None`` for an entity the store does not know)."""
    response = feature_store.get_online_features(
        features=list(refs), entity_rows=[{entity_key: key} for key in keys]
    )
    result: dict[str, list[Any]] = response.to_dict()
    return result


def source_frame(feature_store: Any, view: str, columns: Sequence[str] = ()) -> pd.DataFrame:
    """The offline rows of feature view ``view``'s batch source (a Feast ``FileSource``:
    Parquet, a path relative to the feature repository or absolute), ``columns`` only
    when given. Other sources (a warehouse) raise ``NotImplementedError``: count their
    rows with the warehouse's own SQL."""
    from feast import FileSource

    source = feature_store.get_feature_view(view).batch_source
    if not isinstance(source, FileSource):
        raise NotImplementedError(
            f"the source of {view!r} is a {type(source).__name__}: only FileSource rows "
            "are read here"
        )
    path = FileSource.get_uri_for_file_path(feature_store.repo_path, source.path)
    frame: pd.DataFrame = pd.read_parquet(path, columns=list(columns) or None)
    return frame


def ingestion_column(feature_store: Any, view: str) -> str:
    """The column that says when a source row arrived: the source's
    ``created_timestamp_column``, else its event ``timestamp_field``."""
    source = feature_store.get_feature_view(view).batch_source
    return str(source.created_timestamp_column or source.timestamp_field)


def latest_ingestion(feature_store: Any, view: str) -> datetime | None:
    """The newest ingestion time (:func:`ingestion_column`) in ``view``'s source, in UTC;
    ``None`` for an empty source. A model trained now has seen every row up to it."""
    column = ingestion_column(feature_store, view)
    values = pd.to_datetime(source_frame(feature_store, view, [column])[column], utc=True)
    return None if values.empty else values.max().to_pydatetime()


def rows_since(feature_store: Any, view: str, cutoff: datetime | None) -> int:
    """How many rows of ``view``'s source arrived after ``cutoff`` (all, for ``None``)."""
    column = ingestion_column(feature_store, view)
    values = pd.to_datetime(source_frame(feature_store, view, [column])[column], utc=True)
    if cutoff is None:
        return len(values)
    return int((values > pd.Timestamp(cutoff).tz_convert("UTC")).sum())


def main(
    argv: Sequence[str] | None,
    *,
    prog: str,
    repo: Path,
    write_source: Callable[[int, int], Path],
    rows: int = 20_000,
    seed: int = 42,
) -> int:
    """A repository's feature-store command; returns the exit status.

    ``write-source [--rows N] [--seed S]`` calls the repository's ``write_source(rows,
    seed)`` (its synthetic or exported source data); ``apply`` registers the definitions
    in ``repo`` (:func:`apply`); ``materialize`` loads the latest values into the online
    store (:func:`materialize`). In the production profile the stores are checked first:
    a misconfigured or unreachable one is one line on stderr and exit status 1.
    """
    parser = argparse.ArgumentParser(prog=prog)
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write-source", help="write the source data")
    write.add_argument("--rows", type=int, default=rows)
    write.add_argument("--seed", type=int, default=seed)
    commands.add_parser("apply", help="register the Feast definitions")
    commands.add_parser("materialize", help="load the latest values into the online store")
    args = parser.parse_args(argv)
    if args.command != "write-source":
        try:
            profile.check(mlflow=False)  # before anything is written
        except profile.ProfileError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    if args.command == "write-source":
        print(f"wrote {write_source(args.rows, args.seed)}")
    elif args.command == "apply":
        apply(repo)
        print(f"applied Feast definitions in {repo}")
    else:
        materialize(store(repo))
        print("materialized the latest features into the online store")
    return 0


Synthetic = Callable[[int, int], tuple[np.ndarray, np.ndarray]]
"""A demo generator: ``(rows, seed) -> (X float32, y int64)`` in the schema's column order."""


def entity_key(dataset: Dataset) -> str:
    """The join key column of a feature source: the entity column (made an identifier),
    or ``row_id`` (a row number) when the schema names none."""
    if dataset.entity is None:
        return "row_id"
    if dataset.entity.isidentifier():
        return dataset.entity
    return re.sub(r"\W+", "_", dataset.entity).strip("_").lower() or "entity_id"


class SchemaFeatureStore:
    """One model repository's feature store, derived from its schema.

    The entity, feature view and fields come from ``schema`` (its ``dataset:`` section
    and features). The feature view's source is the table ``dataset.source`` names, with
    its own event timestamps, read in place when Feast can (:attr:`in_place`: a Parquet
    table with an entity and a timestamp column, its columns the feature names);
    otherwise :meth:`write_source` writes a normalised Parquet copy of it (feature names
    as columns, the entity key, the event timestamp) into :meth:`data_dir`. With no
    source (the demo) :meth:`write_source` writes ``rows`` customers of ``synthetic``
    instead. Training reads a point-in-time join (:meth:`training_data`): every label
    sees the features as they were when it was observed.

    Args:
        schema: the repository's loaded ``features.yaml`` (with a ``dataset:`` section).
        root: the repository root (relative sources resolve against it).
        synthetic: the repository's demo generator (only called without a source; a
            schema with no source and no generator is a :class:`DataError`).
        feature_repo: the Feast repository folder (default ``root/feature_repo``;
            ``$FEATURE_REPO_DIR`` overrides it when set, read at each call).

    Example::

        FEAST = SchemaFeatureStore(SCHEMA, repo_root, synthetic=make_dataset)
        FEAST.write_source(20_000, seed=42)
        X, y = FEAST.training_data(FEAST.apply())
    """

    SOURCE_SUFFIX = ".parquet"
    LABELS_FILE = "labels.parquet"
    """The labels (entity key, ``event_timestamp``, label) in :meth:`data_dir`."""
    HISTORY_DAYS = 20
    """Demo feature rows carry event times spread over this many days before "now"."""
    LABEL_DELAY = timedelta(days=1)
    """A demo label is observed this long after the features it depends on."""

    def __init__(
        self,
        schema: FeatureSchema,
        root: Path,
        synthetic: Synthetic | None = None,
        feature_repo: Path | None = None,
    ) -> None:
        self.schema = schema
        self.dataset = tables.dataset_of(schema)
        self.root = Path(root)
        self.synthetic = synthetic
        self.default_repo = Path(feature_repo) if feature_repo else self.root / "feature_repo"
        self.feature_view = self.dataset.feature_view
        self.entity_name = self.dataset.entity_name
        self.entity_key = entity_key(self.dataset)
        """The join key column of the feature source (the entity column, or a row number)."""
        self.label = self.dataset.label
        self.in_place = self._reads_in_place()
        """Whether the feature view reads ``dataset.source`` in place (else the copy)."""
        self.source_file = f"{self.feature_view}{self.SOURCE_SUFFIX}"
        """The written source in :meth:`data_dir`: the demo's rows, or the normalised copy."""
        self.timestamp_field = (
            self.dataset.timestamp
            if self.in_place and self.dataset.timestamp
            else "event_timestamp"
        )
        """The source's event timestamp column."""
        self.created_column = None if self.in_place else "created"
        """The source's ingestion time column (``None``: the event timestamp says it)."""
        self.ttl = timedelta(days=30) if self.dataset.is_demo else timedelta(days=3650)
        """How old a feature value may be and still be served (and materialized)."""

    def _reads_in_place(self) -> bool:
        dataset = self.dataset
        if dataset.is_demo or dataset.format != "parquet":
            return False
        if dataset.entity is None or dataset.timestamp is None:
            return False
        if not (dataset.entity.isidentifier() and dataset.timestamp.isidentifier()):
            return False
        for feature in self.schema.features:
            if feature.column not in (None, feature.name):
                return False
            if feature.type == "boolean" and feature.nullable:
                return False  # Feast cannot store a null in a boolean field
        uri = tables.source_uri(dataset, self.root)
        if "://" in uri:
            return True  # a URL: read in place, as Feast's FileSource reads it
        try:
            import pyarrow.parquet as pq

            column = pq.read_schema(uri).field(dataset.timestamp)
        except (OSError, KeyError, ValueError):
            return False
        return str(column.type).startswith("timestamp")

    def repo_dir(self) -> Path:
        """The Feast repository folder (``$FEATURE_REPO_DIR``, else the default)."""
        return repo_dir(self.default_repo)

    def data_dir(self) -> Path:
        """Where the source Parquet files and the SQLite stores live."""
        return self.repo_dir() / "data"

    def source_path(self) -> str:
        """The feature view's source: ``dataset.source`` in place, else the written copy."""
        if self.in_place:
            return tables.source_uri(self.dataset, self.root)
        return str(self.data_dir() / self.source_file)

    def feature_refs(self) -> list[str]:
        """``view:feature`` references of every model input, in schema order."""
        return feature_refs(self.feature_view, self.schema.names)

    def write_source(self, rows: int, seed: int, now: datetime | None = None) -> Path:
        """Write the feature source and the labels as Parquet into :meth:`data_dir`;
        return the folder.

        With ``dataset.source`` (``rows`` and ``seed`` unused): the labels of every row of
        the table at its event timestamp, and, unless Feast reads the table in place, the
        normalised copy of its features. For the demo: ``rows`` synthetic rows, each with
        one feature row at a random time in the last :attr:`HISTORY_DAYS` days and one
        label observed :attr:`LABEL_DELAY` later.

        Raises:
            DataError: the table does not match the schema, or repeats an entity (at a
                timestamp); nothing is written.
        """
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        if self.dataset.is_demo:
            features, label_frame = self._demo_source(rows, seed, now)
        else:
            features, label_frame = self._table_source(now)
        folder = self.data_dir()
        folder.mkdir(parents=True, exist_ok=True)
        if features is not None:
            features.to_parquet(folder / self.source_file, index=False)
        label_frame.to_parquet(folder / self.LABELS_FILE, index=False)
        return folder

    def _feature_frame(
        self, keys: pd.Series, values: pd.DataFrame, event_time: pd.Series, now: datetime
    ) -> pd.DataFrame:
        """The written source: entity key, typed feature columns, event and ingestion time."""
        frame = pd.concat(
            [pd.DataFrame({self.entity_key: keys}), typed_columns(values, self.schema.features)],
            axis=1,
        )
        frame[self.timestamp_field] = event_time
        frame["created"] = pd.Timestamp(now)
        return frame

    def _table_source(self, now: datetime) -> tuple[pd.DataFrame | None, pd.DataFrame]:
        dataset = self.dataset
        table = tables.load_table(self.schema, self.root).reset_index(drop=True)
        y = tables.labels(table, dataset)
        if dataset.entity is None:
            keys = pd.Series(np.arange(len(table), dtype=np.int64))
        else:
            keys = table[dataset.entity]
        if dataset.timestamp is None:
            if keys.duplicated().any():
                raise DataError(
                    f"entity column {dataset.entity!r} repeats values but features.yaml names "
                    "no timestamp: set dataset.timestamp, or entity: null (one row per entity)"
                )
            event_time = pd.Series(pd.Timestamp(now), index=range(len(table)))
        else:
            event_time = pd.to_datetime(table[dataset.timestamp], utc=True)
            repeated = int(pd.DataFrame({"key": keys, "time": event_time}).duplicated().sum())
            if repeated:
                raise DataError(
                    f"{repeated} rows repeat an ({dataset.entity}, {dataset.timestamp}) pair "
                    "of an earlier row; Feast would keep one of them: give each event of an "
                    "entity its own timestamp, or set dataset.entity: null"
                )
        label_frame = pd.DataFrame(
            {self.entity_key: keys, "event_timestamp": event_time, self.label: y}
        )
        if self.in_place:
            return None, label_frame
        tables.matrix(table, self.schema)  # one line naming a column that does not match
        return self._feature_frame(keys, table, event_time, now), label_frame

    def _demo_source(
        self, rows: int, seed: int, now: datetime
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        if self.synthetic is None:
            raise DataError("features.yaml has no dataset.source: set it to the training table")
        X, y = self.synthetic(rows, seed)
        rng = np.random.default_rng(seed + 1)
        days = rng.uniform(self.LABEL_DELAY.days + 1, self.HISTORY_DAYS, len(y))
        event_time = pd.Series(pd.Timestamp(now) - pd.to_timedelta(days, unit="D").round("s"))
        keys = pd.Series(np.arange(len(y), dtype=np.int64))
        values = pd.DataFrame(X, columns=list(self.schema.names))
        features = self._feature_frame(keys, values, event_time, now)
        label_frame = pd.DataFrame(
            {
                self.entity_key: keys,
                "event_timestamp": event_time + self.LABEL_DELAY,
                self.label: y.astype(np.int64),
            }
        )
        return features, label_frame

    def store(self) -> Any:
        """A ``feast.FeatureStore`` on :meth:`repo_dir` (the active profile's config)."""
        return store(self.repo_dir())

    def apply(self) -> Any:
        """Register the entity and feature view, like ``feast apply``; return the store."""
        return apply(self.repo_dir())

    def training_data(self, feature_store: Any | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The written labels joined point-in-time with their features:
        ``(X float32 in schema order, y int64)``."""
        label_frame = pd.read_parquet(self.data_dir() / self.LABELS_FILE)
        frame = training_frame(
            feature_store or self.store(), label_frame, self.feature_refs(), self.entity_key
        )
        return training_matrix(frame, self.schema.features, self.label)

    def training_cutoff(self, feature_store: Any | None = None) -> str | None:
        """The newest ingestion time (ISO 8601) of the source rows: what a model trained
        now has seen, recorded with its MLflow run for the new-data trigger."""
        latest = latest_ingestion(feature_store or self.store(), self.feature_view)
        return None if latest is None else latest.isoformat()

    def materialize(self) -> Any:
        """Load the latest feature values into the online store; return the store."""
        return materialize(self.store())

    def online_features(self, entity_keys: Sequence[Any]) -> dict[str, list[Any]]:
        """The latest feature values of some entities (values of :attr:`entity_key`),
        read from the online store, by feature name."""
        keys = [key.item() if isinstance(key, np.generic) else key for key in entity_keys]
        return online_features(self.store(), self.feature_refs(), self.entity_key, keys)

    def main(self, argv: Sequence[str] | None, prog: str) -> int:
        """The repository's ``write-source`` / ``apply`` / ``materialize`` command
        (:func:`main`); the exit status."""
        return main(argv, prog=prog, repo=self.repo_dir(), write_source=self.write_source)
