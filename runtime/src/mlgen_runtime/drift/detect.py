"""The drift check of a window of inputs against a reference profile.

Per feature: the two-sample Kolmogorov-Smirnov test (numeric) or the chi-square test of
homogeneity (categorical, :func:`scipy.stats.chi2_contingency`), and the PSI over the
profile's bins or levels (plus an "other" level for unseen codes). A feature has drifted
when its PSI is above the PSI threshold or its p-value below the p-value threshold; the
window has drifted when any feature has. Missing values (NaN; for a category with string
levels also None or an empty cell) are left out of those tests and counted; the share of
them is tested against the training data's (chi-square homogeneity of the 2 x 2 table of
missing and present rows), so a feature whose null share changed has drifted too. A
string category's window may be its levels as strings (counted by the profile's
``labels``; a value outside them in the "other" level) or its codes.

**Speed**: each window column is copied once (in the profile's dtype; ``float32`` for a
sketched ``float64`` ECDF, see :func:`_column_plan`) and sorted; every statistic then
comes from ``searchsorted`` of the reference points into it. Large windows are processed
a column per thread (NumPy sorts without the GIL), so extra memory is a column per
worker, not a copy of the window.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mlgen_runtime.drift._columns import (
    DriftInputError,
    column_getter,
    level_codes,
    n_rows,
    sorted_valid,
)
from mlgen_runtime.drift.profile import (
    CategoricalReference,
    FeatureReference,
    Kind,
    NumericReference,
    ReferenceProfile,
)
from mlgen_runtime.drift.stattests import chi2_homogeneity, ks_pvalue, ks_statistic, psi

DEFAULT_PSI_THRESHOLD = 0.2
"""Drift when a feature's PSI is above this (the usual "significant shift" mark)."""
DEFAULT_PVALUE_THRESHOLD = 0.05
"""Drift when a feature's KS or chi-square p-value is below this."""
PARALLEL_MIN_VALUES = 1_000_000
"""Windows with at least this many values are processed a column per thread."""


@dataclass(frozen=True)
class FeatureDrift:
    """The drift tests of one feature.

    Attributes:
        name: the feature name.
        kind: ``"numeric"`` or ``"categorical"``.
        test: ``"ks"`` (Kolmogorov-Smirnov) or ``"chi2"`` (chi-square homogeneity).
        statistic: the KS distance D or the chi-square statistic.
        p_value: the test's p-value.
        psi: the population stability index.
        drifted: PSI above the PSI threshold or p-value below the p-value threshold.
        n: window rows with a value.
        missing: window rows without a value (NaN).
        null_share: the window's share of rows without a value.
        reference_null_share: the training data's share.
        null_p_value: the chi-square test of homogeneity of the two shares (1.0 when
            neither has a null); below the p-value threshold, the feature has drifted.
    """

    name: str
    kind: Kind
    test: Literal["ks", "chi2"]
    statistic: float
    p_value: float
    psi: float
    drifted: bool
    n: int
    missing: int
    null_share: float = 0.0
    reference_null_share: float = 0.0
    null_p_value: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (without the name)."""
        return {
            "kind": self.kind,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "psi": self.psi,
            "drifted": self.drifted,
            "n": self.n,
            "missing": self.missing,
            "null_share": self.null_share,
            "reference_null_share": self.reference_null_share,
            "null_p_value": self.null_p_value,
        }


@dataclass(frozen=True)
class DriftReport:
    """The drift check of one window.

    Attributes:
        drift: whether any feature has drifted.
        features: one result per feature, in profile order.
        psi_threshold: the PSI threshold used.
        ks_pvalue_threshold: the p-value threshold used (KS and chi-square).
        n_rows: rows in the window.
    """

    drift: bool
    features: tuple[FeatureDrift, ...]
    psi_threshold: float
    ks_pvalue_threshold: float
    n_rows: int

    @property
    def drifted_features(self) -> tuple[str, ...]:
        """The names of the features that drifted."""
        return tuple(result.name for result in self.features if result.drifted)

    def __getitem__(self, name: str) -> FeatureDrift:
        for result in self.features:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (what the command line prints)."""
        return {
            "drift": self.drift,
            "drifted_features": list(self.drifted_features),
            "thresholds": {"psi": self.psi_threshold, "ks_pvalue": self.ks_pvalue_threshold},
            "n_rows": self.n_rows,
            "features": {result.name: result.to_dict() for result in self.features},
        }


@dataclass(frozen=True)
class _ColumnPlan:
    """What to count in one window column, and at which precision."""

    dtype: np.dtype[Any]
    points: np.ndarray  # ECDF support points (numeric) or levels (categorical)
    edges: np.ndarray  # inner PSI bin edges (numeric; empty for categorical)


@dataclass(frozen=True)
class _ColumnCounts:
    n: int
    missing: int
    lt: np.ndarray  # window values < each point
    le: np.ndarray  # window values <= each point
    edge_lt: np.ndarray  # window values < each bin edge


def _column_plan(ref: FeatureReference, profile_dtype: np.dtype[Any]) -> _ColumnPlan:
    """Compare at the profile's precision; a sketched ``float64`` ECDF at ``float32``.

    A sketched ECDF is already approximate to ``1 / MAX_ECDF_POINTS``; when its points
    stay distinct in ``float32`` the rounding of window values moves at most the few
    values within half a ``float32`` step of a point, and a ``float32`` sort is about
    twice as fast.
    """
    if isinstance(ref, CategoricalReference):
        return _ColumnPlan(profile_dtype, ref.levels, ref.levels[:0])
    if profile_dtype == np.float64 and not ref.exact:
        with np.errstate(over="ignore"):
            points = ref.values.astype(np.float32)
            edges = ref.edges.astype(np.float32)
        distinct = bool(np.all(np.isfinite(points)) and np.all(points[1:] > points[:-1]))
        if distinct and np.all(points[np.nonzero(ref.values)] != 0):
            return _ColumnPlan(np.dtype(np.float32), points, edges)
    return _ColumnPlan(profile_dtype, ref.values, ref.edges)


def _count_column(name: str, plan: _ColumnPlan, column: Any) -> _ColumnCounts:
    """Sort one window column and count its values below / at the plan's points."""
    try:
        values, missing = sorted_valid(column, plan.dtype)
    except DriftInputError as error:
        raise DriftInputError(f"column {name!r}: {error}") from error
    if values.size == 0:  # only nulls: the null share test alone has something to say
        none = np.zeros(plan.points.size, dtype=np.intp)
        return _ColumnCounts(0, missing, none, none, np.zeros(plan.edges.size, dtype=np.intp))
    lt = np.searchsorted(values, plan.points, "left")
    le = lt.copy()
    ties = values[np.minimum(lt, values.size - 1)] == plan.points  # usually few
    if np.any(ties):
        le[ties] = np.searchsorted(values, plan.points[ties], "right")
    edge_lt = np.searchsorted(values, plan.edges, "left")
    return _ColumnCounts(values.size, missing, lt, le, edge_lt)


def detect_drift(
    current: Any,
    profile: ReferenceProfile,
    *,
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
    ks_pvalue_threshold: float = DEFAULT_PVALUE_THRESHOLD,
    workers: int | None = None,
) -> DriftReport:
    """Test a window of inputs for drift against the training data's profile.

    Args:
        current: the window: a 2-D array with the profile's columns in order, or a
            mapping / DataFrame of columns by name (other columns are ignored).
        profile: the reference profile (:func:`~mlgen_runtime.drift.load_profile`).
        psi_threshold: drift when a PSI is above this.
        ks_pvalue_threshold: drift when a KS or chi-square p-value is below this.
        workers: threads (default: one per CPU, up to 4, for windows of at least
            :data:`PARALLEL_MIN_VALUES` values; else 1).

    Raises:
        DriftInputError: a column is missing or has no values, or values are not numbers.
    """
    psi_threshold, ks_pvalue_threshold = float(psi_threshold), float(ks_pvalue_threshold)
    names = profile.feature_names
    column = column_getter(current, names)
    rows = n_rows(current, names)
    if rows == 0:
        raise DriftInputError("the window has no rows")
    plans = [_column_plan(ref, np.dtype(profile.dtype)) for ref in profile.features]

    def count(index: int) -> _ColumnCounts:
        values = column(index)
        ref = profile.features[index]
        if isinstance(ref, CategoricalReference) and ref.labels is not None:
            values = level_codes(values, ref.labels)
        counted = _count_column(names[index], plans[index], values)
        if counted.n == 0 and ref.missing == 0:  # never null in training: a broken column
            raise DriftInputError(f"column {names[index]!r} has no values")
        return counted

    if workers is None:
        parallel = rows * len(names) >= PARALLEL_MIN_VALUES
        workers = min(4, os.cpu_count() or 1, len(names)) if parallel else 1
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            counts = list(pool.map(count, range(len(names))))
    else:
        counts = [count(index) for index in range(len(names))]

    statistics = np.zeros(len(names))
    p_values = np.ones(len(names))
    psis = np.zeros(len(names))
    numeric: list[int] = []
    for index, (ref, got) in enumerate(zip(profile.features, counts, strict=True)):
        if got.n == 0:  # every value null: no distribution to compare
            continue
        if isinstance(ref, NumericReference):
            numeric.append(index)
            statistics[index] = ks_statistic(
                ref.cum_counts, ref.below_counts, ref.n, got.le, got.lt, got.n
            )
            bins = np.diff(np.concatenate(([0], got.edge_lt, [got.n])))
            psis[index] = psi(ref.proportions, bins / got.n)
        else:
            level_counts = got.le - got.lt
            current_counts = np.append(level_counts, got.n - int(level_counts.sum()))
            reference_counts = np.append(ref.counts, 0)  # "other": never seen in training
            statistics[index], p_values[index] = chi2_homogeneity(reference_counts, current_counts)
            psis[index] = psi(reference_counts / ref.n, current_counts / got.n)
    if numeric:
        p_values[numeric] = ks_pvalue(
            statistics[numeric],
            [profile.features[i].n for i in numeric],
            [counts[i].n for i in numeric],
            threshold=ks_pvalue_threshold,
        )
    null_p = [
        chi2_homogeneity([ref.missing, ref.n], [got.missing, got.n])[1]
        if ref.missing or got.missing
        else 1.0
        for ref, got in zip(profile.features, counts, strict=True)
    ]
    results = tuple(
        FeatureDrift(
            name=ref.name,
            kind=ref.kind,
            test="ks" if ref.kind == "numeric" else "chi2",
            statistic=float(statistics[i]),
            p_value=float(p_values[i]),
            psi=float(psis[i]),
            drifted=bool(
                psis[i] > psi_threshold
                or p_values[i] < ks_pvalue_threshold
                or null_p[i] < ks_pvalue_threshold
            ),
            n=counts[i].n,
            missing=counts[i].missing,
            null_share=counts[i].missing / (counts[i].n + counts[i].missing),
            reference_null_share=ref.missing / (ref.n + ref.missing),
            null_p_value=float(null_p[i]),
        )
        for i, ref in enumerate(profile.features)
    )
    return DriftReport(
        drift=any(result.drifted for result in results),
        features=results,
        psi_threshold=psi_threshold,
        ks_pvalue_threshold=ks_pvalue_threshold,
        n_rows=rows,
    )
