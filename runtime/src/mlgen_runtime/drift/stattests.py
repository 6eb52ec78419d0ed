"""The per-feature tests: KS p-values, chi-square homogeneity and the PSI.

scipy does the statistics; the one place this module does more is the KS p-value of
large samples. ``scipy.stats.ks_2samp(method="asymp")`` is ``kstwo.sf(D, round(n*m/(n+m)))``,
and for an effective size above :data:`KS_EXACT_MAX_N` with ``n*D**2`` in ``[2.2, 370)``
(p below about 0.014) that call sums O(n) terms: about 0.25 s per feature. There
:func:`ks_pvalue` uses the Kolmogorov limit with Vrbik's finite-size correction (relative
error about ``10/n``, below 0.1 % there), vectorised over features, and calls
``kstwo.sf`` exactly again for any p-value within :data:`RECHECK_BAND` of the decision
threshold, so the decision is always scipy's. scipy is imported on first use: serving
imports this package for the profile and the PSI only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PSI_EPSILON = 1e-4
"""Bin proportions are floored at this in the PSI (empty bins would divide by zero)."""
KS_EXACT_MAX_N = 10_000
"""Up to this effective sample size KS p-values are always scipy's ``kstwo.sf``."""
RECHECK_BAND = 0.05
"""Approximate p-values within this relative distance of the threshold are recomputed
with scipy exactly (the approximation's error is below 0.1 % there)."""
_KS_SLOW_T2 = (2.2, 370.0)  # n * D**2 range where scipy's kstwo.sf sums O(n) terms


def psi(expected: Any, actual: Any, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of two proportion vectors over the same bins.

    ``sum((a - e) * ln(a / e))`` with both proportions floored at ``epsilon``.
    """
    e = np.maximum(np.asarray(expected, dtype=np.float64), epsilon)
    a = np.maximum(np.asarray(actual, dtype=np.float64), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_pvalue(statistic: Any, n1: Any, n2: Any, *, threshold: float | None = None) -> np.ndarray:
    """Two-sided two-sample KS p-values of statistics ``D`` for sample sizes ``n1, n2``.

    Equal to ``scipy.stats.ks_2samp(..., method="asymp").pvalue`` except where scipy's
    computation is slow (see the module docstring), where it is within about ``10 / n``
    relative of it; with ``threshold``, p-values that close to it are scipy's exactly,
    so ``p < threshold`` is always scipy's decision.
    """
    from scipy import special, stats  # imported on first use: it takes a second

    d = np.atleast_1d(np.asarray(statistic, dtype=np.float64))
    sizes = [np.broadcast_to(np.asarray(n, dtype=np.float64), d.shape) for n in (n1, n2)]
    en = np.round(sizes[0] * sizes[1] / (sizes[0] + sizes[1]))
    t2 = en * d * d
    slow = (en > KS_EXACT_MAX_N) & (t2 >= _KS_SLOW_T2[0]) & (t2 < _KS_SLOW_T2[1])
    p = np.empty_like(d)
    if np.any(~slow):
        p[~slow] = stats.kstwo.sf(d[~slow], en[~slow])
    if np.any(slow):
        # Vrbik (2020): P(sqrt(n) D_n > t) ~ K(t + 1/(6 sqrt n) + (t - 1)/(4 n)).
        n = en[slow]
        t = np.sqrt(n) * d[slow]
        p[slow] = special.kolmogorov(t + 1.0 / (6.0 * np.sqrt(n)) + (t - 1.0) / (4.0 * n))
        if threshold is not None and threshold > 0:
            near = slow & (np.abs(p - threshold) <= RECHECK_BAND * threshold)
            if np.any(near):
                p[near] = stats.kstwo.sf(d[near], en[near])
    return np.clip(p, 0.0, 1.0)


def ks_statistic(
    ref_cum: np.ndarray, ref_below: np.ndarray, ref_n: int, le: np.ndarray, lt: np.ndarray, n: int
) -> float:
    """The KS distance between a reference ECDF and a window's, at the reference points.

    ``ref_cum`` / ``ref_below``: reference values ``<=`` / ``<`` each support point;
    ``le`` / ``lt``: the window's. Both ECDFs are exactly known at every support point and
    just before it; when the points are all the distinct reference values, every jump of
    either function is covered and this is the supremum (scipy's ``ks_2samp`` statistic).
    """
    at_point = np.abs(ref_cum / ref_n - le / n)
    before_point = np.abs(ref_below / ref_n - lt / n)
    # Window mass beyond the last reference point (when the reference ECDF is sketched).
    tail = 1.0 - ref_cum[-1] / ref_n
    return float(max(at_point.max(), before_point.max(), tail))


def chi2_homogeneity(
    reference_counts: Any, current_counts: Any, correction: bool = True
) -> tuple[float, float]:
    """Chi-square test of homogeneity of two count vectors over the same levels.

    :func:`scipy.stats.chi2_contingency` of the 2 x levels table, levels empty in both
    dropped (scipy refuses zero expected counts); Yates' correction with 2 levels left,
    as scipy does. A table with fewer than 2 levels or an empty row has nothing to test:
    ``(0.0, 1.0)``. Returns ``(statistic, p_value)``.
    """
    from scipy import stats

    table = np.vstack([reference_counts, current_counts]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or np.any(table.sum(axis=1) == 0):
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=correction)
    return float(result.statistic), float(result.pvalue)
