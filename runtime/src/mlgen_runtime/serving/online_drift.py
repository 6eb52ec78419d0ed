"""Online input drift: live feature histograms in the training profile's fixed bins.

The service counts every served example into the bins of the reference profile that
training wrote next to the model (``reference_profile.json``, version 1 of the format
generated repositories write): the quantile bins of a numeric feature (its ``edges`` and
``proportions``), one bin per level of a categorical one (its ``levels`` and ``counts``)
plus an "other" bin. Only counts are kept, a few hundred integers whatever the traffic.
A null (NaN: a nullable feature's missing value) is counted in a bin of its own: the
PSI covers the rows with a value, and ``model_feature_null_share{feature="..."}`` is the
share of rows without one. When Prometheus scrapes ``/metrics`` the population stability
index of each feature is computed from them (:func:`mlgen_runtime.drift.stattests.psi`,
the offline check's) and exported as ``model_feature_psi{feature="..."}``.

**Window**: counts go into a current block; when it holds ``window_rows`` rows it
replaces the previous block and a new one starts. The PSI covers both blocks: the last
``window_rows`` to ``2 * window_rows`` rows. It is exported only once the window holds
``min_rows`` rows (fewer rows make a noisy, inflated PSI).

**Cost per request**: the request's rows are copied into a buffer. Every
:data:`BUFFER_ROWS` rows, and before every scrape, the buffer is binned at once: one
broadcast comparison of all its rows against all features' bin edges (a padded
``[features, edges]`` matrix; a value's bin is the number of edges at or below it, as
``searchsorted(edges, value, "right")``) and one ``bincount`` into the flat counts array.
No Python loop runs over rows or features, and memory stays fixed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.core import GaugeMetricFamily, Metric

from mlgen_runtime.drift import DriftInputError, NumericReference, ReferenceProfile
from mlgen_runtime.drift.stattests import psi

DEFAULT_WINDOW_ROWS = 10_000
"""Rows per block of the sliding window (``ONLINE_DRIFT_WINDOW``)."""
MIN_ROWS = 1_000
"""PSI is exported once the window holds at least this many rows."""
BUFFER_ROWS = 256
"""Rows buffered between two binning steps."""
PSI_METRIC = "model_feature_psi"
ROWS_METRIC = "model_drift_window_rows"
NULL_SHARE_METRIC = "model_feature_null_share"


class ProfileError(ValueError):
    """The reference profile cannot be read, or does not fit the service."""


@dataclass(frozen=True, eq=False)
class ReferenceBins:
    """The fixed bins of one feature and the training share in each.

    Attributes:
        name: the feature name.
        edges: inner bin edges, sorted; bin ``i`` holds values in
            ``[edges[i-1], edges[i])``, the outer bins are open-ended.
        expected: the training share of each of the ``len(edges) + 1`` bins.
    """

    name: str
    edges: np.ndarray
    expected: np.ndarray


def reference_bins(data: Mapping[str, Any]) -> tuple[tuple[ReferenceBins, ...], np.dtype]:
    """The bins of every feature of a profile (the parsed JSON) and its dtype.

    The profile is read by :meth:`mlgen_runtime.drift.ReferenceProfile.from_dict`, the
    offline check's reader. A categorical feature gets a bin per level, split half-way
    between codes, plus the offline check's "other" level (expected share 0). Served codes
    are the schema's, all of them levels of the profile, so that bin stays empty online: it
    is kept so that the PSI sums over the same bins as the offline check's.

    Raises:
        ProfileError: the data is not a version 1 reference profile.
    """
    try:
        profile = ReferenceProfile.from_dict(data)
    except DriftInputError as error:
        raise ProfileError(str(error)) from error
    dtype = np.dtype(profile.dtype)
    features = []
    for ref in profile.features:
        if isinstance(ref, NumericReference):
            edges, expected = ref.edges, ref.proportions
            if expected.size != edges.size + 1:
                raise ProfileError(f"feature {ref.name!r}: bins and shares disagree")
        else:
            levels = ref.levels.astype(np.float64)
            edges = ((levels[1:] + levels[:-1]) / 2.0).astype(dtype)
            if not ref.n:
                raise ProfileError(f"feature {ref.name!r}: no training values")
            expected = np.append(ref.counts, 0) / float(ref.n)
        features.append(ReferenceBins(ref.name, edges, expected))
    return tuple(features), dtype


def load_reference_bins(path: Path) -> tuple[tuple[ReferenceBins, ...], np.dtype]:
    """:func:`reference_bins` of the profile file at ``path``.

    Raises:
        ProfileError: the file is missing, not JSON or not a profile.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ProfileError(f"cannot read reference profile {path}: {error}") from error
    except json.JSONDecodeError as error:
        raise ProfileError(f"reference profile {path} is not JSON: {error}") from error
    if not isinstance(data, dict):
        raise ProfileError(f"reference profile {path} is not a JSON object")
    return reference_bins(data)


class OnlineDrift:
    """Streaming per-feature histograms of served inputs, and their PSI.

    Also a Prometheus collector: register it in a registry to export
    ``model_feature_psi{feature}`` and ``model_drift_window_rows``.

    Args:
        bins: the reference bins of every feature, in the input matrix's column order.
        dtype: the precision values are binned at (the profile's).
        window_rows: rows per block of the window.
        min_rows: PSI is reported once the window holds this many rows.

    Raises:
        ValueError: ``window_rows`` or ``min_rows`` is not positive.
    """

    def __init__(
        self,
        bins: Sequence[ReferenceBins],
        dtype: np.dtype | str = "float32",
        window_rows: int = DEFAULT_WINDOW_ROWS,
        min_rows: int = MIN_ROWS,
    ) -> None:
        if window_rows < 1 or min_rows < 1:
            raise ValueError("window_rows and min_rows must be positive")
        self.window_rows = window_rows
        self.min_rows = min_rows
        self.names: tuple[str, ...] = tuple(feature.name for feature in bins)
        self._expected = [feature.expected for feature in bins]
        most = max(expected.size for expected in self._expected)
        self._width = most + 1  # the last slot of each feature counts its nulls (NaN)
        # Padded with +inf: no value reaches a padding edge, so its bin stays in range.
        padded = np.full((len(bins), most - 1), np.inf, dtype=np.float64)
        for index, feature in enumerate(bins):
            padded[index, : feature.edges.size] = feature.edges
        self._edges = padded.astype(np.dtype(dtype))
        self._offsets = np.arange(len(bins), dtype=np.intp) * self._width
        self._size = len(bins) * self._width
        self._current = np.zeros(self._size, dtype=np.int64)
        self._previous = np.zeros(self._size, dtype=np.int64)
        self._current_rows = 0
        self._previous_rows = 0
        self._buffer = np.empty((BUFFER_ROWS, len(bins)), dtype=self._edges.dtype)
        self._buffered = 0

    @classmethod
    def from_file(
        cls,
        path: Path,
        feature_names: Sequence[str],
        window_rows: int = DEFAULT_WINDOW_ROWS,
        min_rows: int = MIN_ROWS,
    ) -> OnlineDrift:
        """The monitor for the profile at ``path``, checked against the service's features.

        Raises:
            ProfileError: the file is not a profile, or its features are not
                ``feature_names`` (in that order).
        """
        bins, dtype = load_reference_bins(path)
        names = [feature.name for feature in bins]
        if names != list(feature_names):
            raise ProfileError(
                f"the reference profile has features {names}, "
                f"the service {list(feature_names)}: retrain"
            )
        return cls(bins, dtype, window_rows, min_rows)

    # -------------------------------------------------------------- counting
    def update(self, features: np.ndarray) -> None:
        """Count a batch: ``features`` is the model's input matrix ``[n, features]``."""
        rows = features.shape[0]
        end = self._buffered + rows
        if end > BUFFER_ROWS:
            self.flush()
            if rows > BUFFER_ROWS:
                self._count(features)
                return
            end = rows
        self._buffer[self._buffered : end] = features
        self._buffered = end

    def flush(self) -> None:
        """Bin the buffered rows into the window's counts."""
        if self._buffered:
            self._count(self._buffer[: self._buffered])
            self._buffered = 0

    def _count(self, features: np.ndarray) -> None:
        values = np.asarray(features, dtype=self._edges.dtype)
        bins = (values[:, :, None] >= self._edges).sum(axis=2)
        null = np.isnan(values)
        if null.any():
            bins[null] = self._width - 1
        bins += self._offsets
        self._current += np.bincount(bins.ravel(), minlength=self._size)
        self._current_rows += values.shape[0]
        if self._current_rows >= self.window_rows:
            self._previous, self._current = self._current, self._previous
            self._current[:] = 0
            self._previous_rows, self._current_rows = self._current_rows, 0

    @property
    def rows(self) -> int:
        """Rows in the window."""
        self.flush()
        return self._current_rows + self._previous_rows

    def counts(self) -> dict[str, np.ndarray]:
        """The window's count per bin of each feature (categorical: levels, then other)."""
        self.flush()
        window = (self._current + self._previous).reshape(len(self.names), self._width)
        return {
            name: window[index, : expected.size].copy()
            for index, (name, expected) in enumerate(zip(self.names, self._expected, strict=True))
        }

    def null_shares(self) -> dict[str, float]:
        """The share of the window's rows without a value (NaN), per feature."""
        rows = self.rows
        window = (self._current + self._previous).reshape(len(self.names), self._width)
        return {
            name: float(window[index, -1]) / rows if rows else 0.0
            for index, name in enumerate(self.names)
        }

    def psi(self) -> dict[str, float] | None:
        """The PSI of each feature over the window's rows with a value; ``None`` below
        ``min_rows`` rows."""
        rows = self.rows
        if rows < self.min_rows:
            return None
        values = {}
        for (name, counts), expected in zip(self.counts().items(), self._expected, strict=True):
            present = int(counts.sum())
            values[name] = psi(expected, counts / present) if present else 0.0
        return values

    def reset(self) -> None:
        """Forget every counted row."""
        self._current[:] = 0
        self._previous[:] = 0
        self._current_rows = self._previous_rows = self._buffered = 0

    # -------------------------------------------------------------- Prometheus
    def describe(self) -> Sequence[Metric]:
        """The metric families (names only), for the registry's duplicate check."""
        return [
            GaugeMetricFamily(PSI_METRIC, "", labels=["feature"]),
            GaugeMetricFamily(ROWS_METRIC, ""),
            GaugeMetricFamily(NULL_SHARE_METRIC, "", labels=["feature"]),
        ]

    def collect(self) -> Iterator[Metric]:
        """The metrics at scrape time: PSI is computed here, not per request."""
        yield GaugeMetricFamily(
            ROWS_METRIC, "Served rows in the online drift window.", value=self.rows
        )
        shares = GaugeMetricFamily(
            NULL_SHARE_METRIC,
            "Share of the online drift window's rows without a value, per feature.",
            labels=["feature"],
        )
        for name, share in self.null_shares().items():
            shares.add_metric([name], share)
        yield shares
        values = self.psi()
        if values is None:
            return
        family = GaugeMetricFamily(
            PSI_METRIC,
            "Population stability index of live inputs against the training profile.",
            labels=["feature"],
        )
        for name, value in values.items():
            family.add_metric([name], value)
        yield family
