"""Feast helpers: open a feature repository, apply its definitions, build a
point-in-time training set, materialize and read online features, and the
``write-source`` / ``apply`` / ``materialize`` command of a repository (:func:`main`).

Needs the ``feast`` extra. The Feast definitions (entities, sources, feature views) stay
in the model repository's ``feature_repo/``; these functions take the repository's
names (feature view, entity key, label) as arguments and import Feast lazily, so a
module that imports this one starts fast.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlgen_runtime import profile
from mlgen_runtime.schema import Feature, FeatureSchema

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
