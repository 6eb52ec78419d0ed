"""The reference profile: what a drift check needs to know about the training data.

Built once from the training matrix (:func:`build_profile`) and saved next to the model
as JSON (:func:`save_profile`), so a drift check never needs the training set again:

* numeric feature: the inner edges of its quantile bins (:data:`DEFAULT_BINS` bins,
  ``numpy.quantile``'s default linear interpolation, equal edges merged, the outer bins
  open-ended), the share of training rows in each bin, and the reference ECDF as sorted
  support points with cumulative counts. With at most :data:`MAX_ECDF_POINTS` distinct
  values the ECDF is *exact* (the KS statistic then equals
  :func:`scipy.stats.ks_2samp`'s); otherwise the points are evenly spaced order
  statistics, each with the exact counts of training values below and at it, and the
  statistic is at most about ``1 / MAX_ECDF_POINTS`` below the full one (never above).
* categorical feature: the count of training rows at each level (the schema's codes
  plus any other value seen in training); a category with string levels also stores
  them (``labels``: code ``i`` is ``labels[i]``), so a window of strings is counted by
  level, and the training column may be strings or codes.
* every feature: the count of training rows without a value (``missing``), against
  which a window's null share is tested.

Profiles written by generated repositories before the runtime existed
(``"<package>.reference-profile"``, version 1) have the same layout and load unchanged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from mlgen_runtime.drift._columns import (
    DriftInputError,
    column_getter,
    input_dtype,
    level_codes,
    n_rows,
    sorted_valid,
)

Kind = Literal["numeric", "categorical"]
DEFAULT_BINS = 10
"""Quantile bins per numeric feature for the PSI."""
MAX_ECDF_POINTS = 10_000
"""The most ECDF support points stored per numeric feature (see the module docstring)."""
PROFILE_FORMAT = "mlgen_runtime.reference-profile"
"""The ``format`` field written; any ``*.reference-profile`` of this version is read."""
PROFILE_VERSION = 1


class SchemaFeature(Protocol):
    """What :func:`build_profile` reads of a schema feature (``mlgen_runtime.schema.Feature``
    or a generated repository's own ``Feature``)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def levels(self) -> tuple[Any, ...]: ...


@dataclass(frozen=True, eq=False)
class _Counted:
    """What every feature reference holds.

    Attributes:
        name: the feature name.
        n: training rows with a value (NaN excluded).
        missing: training rows without a value.
    """

    name: str
    n: int
    missing: int


@dataclass(frozen=True, eq=False)
class NumericReference(_Counted):
    """The training distribution of one numeric feature (and :class:`_Counted`'s fields).

    Attributes:
        edges: inner bin edges (sorted, distinct); bin ``i`` is
            ``[edges[i-1], edges[i])`` with open-ended outer bins.
        proportions: the share of training values in each of the ``len(edges) + 1`` bins.
        values: ECDF support points (sorted, distinct).
        cum_counts: training values ``<=`` each support point.
        below_counts: training values ``<`` each support point.
        exact: whether ``values`` are all the distinct training values.
    """

    edges: np.ndarray
    proportions: np.ndarray
    values: np.ndarray
    cum_counts: np.ndarray
    below_counts: np.ndarray
    exact: bool

    kind: Kind = "numeric"


@dataclass(frozen=True, eq=False)
class CategoricalReference(_Counted):
    """The training distribution of one categorical feature (and :class:`_Counted`'s fields).

    Attributes:
        levels: the known codes (sorted).
        counts: training rows at each level.
        labels: a category with string levels: its levels, code ``i`` is ``labels[i]``
            (a window's strings are counted by them); ``None`` for integer codes.
    """

    levels: np.ndarray
    counts: np.ndarray
    labels: tuple[str, ...] | None = None

    kind: Kind = "categorical"

    @property
    def proportions(self) -> np.ndarray:
        """The share of training values at each level."""
        return self.counts / self.n


FeatureReference = NumericReference | CategoricalReference


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """The training data's summary.

    Attributes:
        features: one reference per feature, in column order.
        dtype: ``"float32"`` or ``"float64"``: windows are compared at this precision.
        n_rows: training rows.
        created_at: when the profile was built (ISO 8601, UTC).
    """

    features: tuple[FeatureReference, ...]
    dtype: str
    n_rows: int
    created_at: str

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features' names, in column order."""
        return tuple(feature.name for feature in self.features)

    def to_dict(self) -> dict[str, Any]:
        """The profile as JSON-ready data (see :func:`save_profile`)."""
        features: list[dict[str, Any]] = []
        for ref in self.features:
            record: dict[str, Any] = {
                "name": ref.name,
                "kind": ref.kind,
                "n": ref.n,
                "missing": ref.missing,
            }
            if isinstance(ref, NumericReference):
                record |= {
                    "edges": ref.edges.tolist(),
                    "proportions": ref.proportions.tolist(),
                    "ecdf_exact": ref.exact,
                    "ecdf_values": ref.values.tolist(),
                    "ecdf_cum_counts": ref.cum_counts.tolist(),
                }
                if not ref.exact:  # else it is cum_counts shifted by one
                    record["ecdf_below_counts"] = ref.below_counts.tolist()
            else:
                record |= {"levels": ref.levels.tolist(), "counts": ref.counts.tolist()}
                if ref.labels is not None:
                    record["labels"] = list(ref.labels)
            features.append(record)
        return {
            "format": PROFILE_FORMAT,
            "version": PROFILE_VERSION,
            "created_at": self.created_at,
            "dtype": self.dtype,
            "n_rows": self.n_rows,
            "features": features,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_dict` data (or a generated repository's own
        version 1 profile).

        Raises:
            DriftInputError: the data is not a version 1 reference profile.
        """
        try:
            return _from_dict(cls, data)
        except DriftInputError:
            raise
        except (KeyError, TypeError, ValueError) as error:
            raise DriftInputError(f"malformed reference profile: {error!r}") from error


def _from_dict(cls: type[ReferenceProfile], data: Mapping[str, Any]) -> ReferenceProfile:
    form, version = data["format"], data["version"]
    if not (isinstance(form, str) and form.endswith(".reference-profile")) or (
        version != PROFILE_VERSION
    ):
        raise DriftInputError(
            f"not a version {PROFILE_VERSION} reference profile "
            f"(format {form!r}, version {version!r})"
        )
    dtype = np.dtype(data["dtype"])
    if dtype not in (np.float32, np.float64):
        raise DriftInputError(f"unsupported profile dtype {data['dtype']!r}")

    def array(values: Any) -> np.ndarray:  # JSON floats are float64: round once
        return np.asarray(values, dtype=np.float64).astype(dtype)

    features: list[FeatureReference] = []
    for record in data["features"]:
        name, n, missing = str(record["name"]), int(record["n"]), int(record["missing"])
        if record["kind"] == "numeric":
            cum_counts = np.asarray(record["ecdf_cum_counts"], dtype=np.int64)
            below_counts = (
                np.concatenate(([0], cum_counts[:-1]))
                if record["ecdf_exact"]
                else np.asarray(record["ecdf_below_counts"], dtype=np.int64)
            )
            features.append(
                NumericReference(
                    name=name,
                    n=n,
                    missing=missing,
                    edges=array(record["edges"]),
                    proportions=np.asarray(record["proportions"], dtype=np.float64),
                    values=array(record["ecdf_values"]),
                    cum_counts=cum_counts,
                    below_counts=below_counts,
                    exact=bool(record["ecdf_exact"]),
                )
            )
        elif record["kind"] == "categorical":
            features.append(
                CategoricalReference(
                    name=name,
                    n=n,
                    missing=missing,
                    levels=array(record["levels"]),
                    counts=np.asarray(record["counts"], dtype=np.int64),
                    labels=None
                    if record.get("labels") is None
                    else tuple(str(label) for label in record["labels"]),
                )
            )
        else:
            raise DriftInputError(f"unknown feature kind {record['kind']!r}")
    return cls(tuple(features), dtype.name, int(data["n_rows"]), str(data["created_at"]))


def _profile_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """``float32`` for ``float16``/``float32`` data (the model's matrix), else ``float64``."""
    if dtype.kind == "f" and dtype.itemsize <= 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def build_profile(
    X: Any,
    feature_names: Sequence[str],
    *,
    features: Iterable[SchemaFeature] = (),
    kinds: Mapping[str, Kind] | None = None,
    bins: int = DEFAULT_BINS,
    max_points: int = MAX_ECDF_POINTS,
) -> ReferenceProfile:
    """Summarise training data into a :class:`ReferenceProfile`.

    Args:
        X: the training matrix, shape ``(rows, len(feature_names))``, or a mapping /
            DataFrame of columns by name.
        feature_names: the column names, in order.
        features: the schema's features: their kinds, and the levels of categorical ones
            (a level training never saw still gets a count of 0).
        kinds: ``"numeric"`` or ``"categorical"`` per name, over ``features``' kinds;
            names in neither are numeric.
        bins: quantile bins per numeric feature (equal edges are merged).
        max_points: the most ECDF support points stored per numeric feature.

    Raises:
        DriftInputError: a column is missing, empty, all NaN or has infinite values.
        ValueError: ``bins`` or ``max_points`` is too small.
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    names = list(feature_names)
    columns = column_getter(X, names)
    rows = n_rows(X, names)
    dtype = _profile_dtype(input_dtype(X, names))
    schema = {feature.name: feature for feature in features}
    kind_of = {name: feature.kind for name, feature in schema.items()} | dict(kinds or {})
    references: list[FeatureReference] = []
    for index, name in enumerate(names):
        labels = _labels(schema.get(name))
        column = columns(index)
        if labels is not None:
            column = level_codes(column, labels)
        values, missing = sorted_valid(column, dtype)
        if values.size == 0:
            raise DriftInputError(f"reference column {name!r} has no values")
        if not (np.isfinite(values[0]) and np.isfinite(values[-1])):
            raise DriftInputError(f"reference column {name!r} has infinite values")
        if kind_of.get(name, "numeric") == "categorical":
            feature = schema.get(name)
            levels = () if feature is None else getattr(feature, "codes", None) or feature.levels
            references.append(_categorical_reference(name, values, missing, dtype, levels, labels))
        else:
            references.append(_numeric_reference(name, values, missing, dtype, bins, max_points))
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    return ReferenceProfile(tuple(references), dtype.name, rows, created_at)


def _numeric_reference(
    name: str,
    values: np.ndarray,
    missing: int,
    dtype: np.dtype[Any],
    bins: int,
    max_points: int,
) -> NumericReference:
    n = values.size
    quantiles = np.quantile(values.astype(np.float64), np.linspace(0.0, 1.0, bins + 1)[1:-1])
    edges = np.unique(quantiles.astype(dtype))
    counts = np.diff(np.concatenate(([0], np.searchsorted(values, edges, "left"), [n])))
    run_ends = np.flatnonzero(values[1:] != values[:-1])
    if run_ends.size + 1 <= max_points:
        ends = np.append(run_ends, n - 1)
        points, exact = values[ends], True
        cum_counts = ends + 1
        below_counts = np.concatenate(([0], cum_counts[:-1]))
    else:
        ranks = np.unique(np.round(np.linspace(0, n - 1, max_points)).astype(np.int64))
        points, exact = np.unique(values[ranks]), False
        cum_counts = np.searchsorted(values, points, "right")
        below_counts = np.searchsorted(values, points, "left")
    return NumericReference(
        name=name,
        n=n,
        missing=missing,
        edges=edges,
        proportions=counts / n,
        values=np.ascontiguousarray(points, dtype=dtype),
        cum_counts=np.asarray(cum_counts, dtype=np.int64),
        below_counts=np.asarray(below_counts, dtype=np.int64),
        exact=exact,
    )


def _categorical_reference(
    name: str,
    values: np.ndarray,
    missing: int,
    dtype: np.dtype[Any],
    schema_levels: Sequence[int],
    labels: tuple[str, ...] | None = None,
) -> CategoricalReference:
    seen = values[np.append(np.flatnonzero(values[1:] != values[:-1]), values.size - 1)]
    levels = np.union1d(seen, np.asarray(schema_levels, dtype=dtype)).astype(dtype)
    counts = np.searchsorted(values, levels, "right") - np.searchsorted(values, levels, "left")
    return CategoricalReference(
        name=name,
        n=values.size,
        missing=missing,
        levels=levels,
        counts=counts.astype(np.int64),
        labels=labels,
    )


def _labels(feature: Any) -> tuple[str, ...] | None:
    """A schema feature's string levels (``None``: numbers or integer codes)."""
    levels = tuple(getattr(feature, "levels", ()) or ())
    if levels and all(isinstance(level, str) for level in levels):
        return levels
    return None


def save_profile(profile: ReferenceProfile, path: Path) -> Path:
    """Write ``profile`` as compact JSON to ``path``, atomically; return ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    text = json.dumps(profile.to_dict(), separators=(",", ":")) + "\n"
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path


def load_profile(path: Path) -> ReferenceProfile:
    """Read a profile written by :func:`save_profile` (or by a generated repository).

    Raises:
        DriftInputError: the file is missing, not JSON or not a profile.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise DriftInputError(f"cannot read reference profile {path}: {error}") from error
    except json.JSONDecodeError as error:
        raise DriftInputError(f"reference profile {path} is not JSON: {error}") from error
    if not isinstance(data, dict):
        raise DriftInputError(f"reference profile {path} is not a JSON object")
    return ReferenceProfile.from_dict(data)
