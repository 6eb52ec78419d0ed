"""A/B statistics: sample sizes, the readout's tests, sample-ratio mismatch, guardrails.

Every number comes from statsmodels or scipy; this module chooses the test, checks the
inputs and returns a result object with the decision:

* :func:`sample_size_proportions` / :func:`sample_size_means`: users per arm for a
  two-sided test (statsmodels' ``proportion_effectsize`` with
  ``NormalIndPower().solve_power``; ``zt_ind_solve_power`` or ``tt_ind_solve_power``).
* :func:`two_proportion_ztest` (statsmodels' pooled ``proportions_ztest``, Wald interval
  from ``confint_proportions_2indep``), :func:`welch_ttest` /
  :func:`welch_ttest_from_stats` (``scipy.stats.ttest_ind`` / ``ttest_ind_from_stats``
  with ``equal_var=False``).
* :func:`sample_ratio_mismatch`: ``scipy.stats.chisquare`` of the arm counts against
  the split, flagged below :data:`SRM_P_THRESHOLD`.
* :func:`check_guardrails`: the treatment's latency p95 and error rate against the
  service-level objectives and against the control.

Needs the ``stats`` extra (statsmodels). Serving code never imports this module: it
routes with :mod:`mlgen_runtime.ab.assignment`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats
from statsmodels.stats.power import NormalIndPower, tt_ind_solve_power, zt_ind_solve_power
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    proportions_ztest,
)

from mlgen_runtime.ab.assignment import BUCKETS, DEFAULT_SPLIT, validate_split

SRM_P_THRESHOLD = 0.001
"""A sample-ratio-mismatch p-value below this flags the experiment as broken."""
MAX_LATENCY_REGRESSION = 0.10
"""The treatment's p95 latency may exceed the control's by at most this fraction."""


# ---------------------------------------------------------------------------- sample size


@dataclass(frozen=True)
class SampleSize:
    """Users needed per arm.

    Attributes:
        n_control: control users (rounded up).
        n_treatment: treatment users (rounded up; ``ratio`` times the control's).
        n_control_exact: the unrounded control size.
        effect_size: the standardised effect (Cohen's h or d), as a magnitude.
        alpha: two-sided significance level.
        power: probability of detecting the effect.
    """

    n_control: int
    n_treatment: int
    n_control_exact: float
    effect_size: float
    alpha: float
    power: float

    @property
    def total(self) -> int:
        """Users in both arms."""
        return self.n_control + self.n_treatment


def _check_design(alpha: float, power: float, ratio: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not alpha < power < 1.0:
        raise ValueError(f"power must be in (alpha, 1), got {power}")
    if not (math.isfinite(ratio) and ratio > 0):
        raise ValueError(f"ratio must be positive, got {ratio}")


def _sample_size(
    n_control: Any, effect_size: float, alpha: float, power: float, ratio: float
) -> SampleSize:
    n = float(np.asarray(n_control).item())  # statsmodels returns a 0-d or 1-element array
    return SampleSize(
        n_control=math.ceil(n),
        n_treatment=math.ceil(n * ratio),
        n_control_exact=n,
        effect_size=abs(effect_size),
        alpha=alpha,
        power=power,
    )


def sample_size_proportions(
    baseline_rate: float,
    mde: float,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> SampleSize:
    """Users per arm to detect a change of a conversion rate (two-sided).

    Args:
        baseline_rate: the control's rate, in (0, 1).
        mde: the minimum detectable effect: an absolute change of the rate
            (``0.01`` = one percentage point) or, with ``relative``, a fraction of the
            baseline (``0.05`` = +5 %). May be negative.
        relative: whether ``mde`` is relative to the baseline.
        alpha: two-sided significance level.
        power: probability of detecting an effect of size ``mde``.
        ratio: treatment users per control user.

    Cohen's ``h`` (``proportion_effectsize``) and ``NormalIndPower().solve_power``.

    Raises:
        ValueError: a rate outside (0, 1), a zero effect, or a bad alpha/power/ratio.
    """
    _check_design(alpha, power, ratio)
    if not 0.0 < baseline_rate < 1.0:
        raise ValueError(f"baseline_rate must be in (0, 1), got {baseline_rate}")
    treatment_rate = baseline_rate * (1.0 + mde) if relative else baseline_rate + mde
    if not 0.0 < treatment_rate < 1.0:
        raise ValueError(f"the treatment rate {treatment_rate} is outside (0, 1)")
    if treatment_rate == baseline_rate:
        raise ValueError("the effect must be non-zero")
    h = float(proportion_effectsize(treatment_rate, baseline_rate))
    n = NormalIndPower().solve_power(
        effect_size=abs(h), alpha=alpha, power=power, ratio=ratio, alternative="two-sided"
    )
    return _sample_size(n, h, alpha, power, ratio)


def sample_size_means(
    sd: float,
    effect: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    test: Literal["z", "t"] = "z",
) -> SampleSize:
    """Users per arm to detect a change ``effect`` of a mean with standard deviation ``sd``.

    Cohen's ``d = effect / sd``; ``test="z"`` is the normal approximation
    (``zt_ind_solve_power``), ``test="t"`` the two-sample t-test (``tt_ind_solve_power``,
    one or two users more per arm).

    Raises:
        ValueError: ``sd`` not positive, a zero effect, or a bad alpha/power/ratio/test.
    """
    _check_design(alpha, power, ratio)
    if not (math.isfinite(sd) and sd > 0):
        raise ValueError(f"sd must be positive, got {sd}")
    if not (math.isfinite(effect) and effect != 0):
        raise ValueError(f"the effect must be non-zero and finite, got {effect}")
    solve = {"z": zt_ind_solve_power, "t": tt_ind_solve_power}.get(test)
    if solve is None:
        raise ValueError(f"test must be 'z' or 't', got {test!r}")
    d = effect / sd
    n = solve(effect_size=abs(d), alpha=alpha, power=power, ratio=ratio, alternative="two-sided")
    return _sample_size(n, d, alpha, power, ratio)


# ---------------------------------------------------------------------------- tests


@dataclass(frozen=True)
class ProportionTest:
    """A pooled two-proportion z-test of treatment vs control.

    Attributes:
        control_rate: the control's observed rate.
        treatment_rate: the treatment's observed rate.
        difference: ``treatment_rate - control_rate``.
        relative_lift: ``difference / control_rate`` (``None`` when that is 0).
        z: the z statistic (pooled standard error).
        p_value: two-sided p-value.
        ci_low: lower end of the ``1 - alpha`` Wald interval of the difference.
        ci_high: its upper end.
        alpha: the significance level.
        significant: ``p_value < alpha``.
    """

    control_rate: float
    treatment_rate: float
    difference: float
    relative_lift: float | None
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    alpha: float
    significant: bool


def _check_counts(successes: int, n: int, arm: str) -> None:
    if n <= 0:
        raise ValueError(f"{arm}: n must be positive, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"{arm}: successes must be between 0 and n, got {successes}")


def two_proportion_ztest(
    control_successes: int,
    control_n: int,
    treatment_successes: int,
    treatment_n: int,
    *,
    alpha: float = 0.05,
) -> ProportionTest:
    """Pooled two-proportion z-test (statsmodels' ``proportions_ztest``), two-sided.

    When both arms have the same extreme rate (all 0 or all 1) there is no variance
    (statsmodels returns NaN) and the result is ``z = 0``, ``p = 1``.

    Raises:
        ValueError: a count outside ``0..n`` or an arm without users.
    """
    _check_counts(control_successes, control_n, "control")
    _check_counts(treatment_successes, treatment_n, "treatment")
    p_c = control_successes / control_n
    p_t = treatment_successes / treatment_n
    pooled = (control_successes + treatment_successes) / (control_n + treatment_n)
    if 0.0 < pooled < 1.0:
        z, p_value = proportions_ztest(
            [treatment_successes, control_successes], [treatment_n, control_n]
        )
    else:
        z, p_value = 0.0, 1.0
    low, high = confint_proportions_2indep(
        treatment_successes,
        treatment_n,
        control_successes,
        control_n,
        method="wald",
        compare="diff",
        alpha=alpha,
    )
    difference = p_t - p_c
    return ProportionTest(
        control_rate=p_c,
        treatment_rate=p_t,
        difference=difference,
        relative_lift=difference / p_c if p_c > 0 else None,
        z=float(z),
        p_value=float(p_value),
        ci_low=float(low),
        ci_high=float(high),
        alpha=alpha,
        significant=float(p_value) < alpha,
    )


@dataclass(frozen=True)
class WelchTest:
    """Welch's unequal-variance t-test of treatment vs control means.

    Attributes:
        control_mean: the control's sample mean.
        treatment_mean: the treatment's sample mean.
        difference: ``treatment_mean - control_mean``.
        t: the t statistic.
        df: Welch-Satterthwaite degrees of freedom.
        p_value: two-sided p-value.
        ci_low: lower end of the ``1 - alpha`` confidence interval of the difference.
        ci_high: its upper end.
        alpha: the significance level.
        significant: ``p_value < alpha``.
    """

    control_mean: float
    treatment_mean: float
    difference: float
    t: float
    df: float
    p_value: float
    ci_low: float
    ci_high: float
    alpha: float
    significant: bool


def welch_ttest_from_stats(
    control_mean: float,
    control_sd: float,
    control_n: int,
    treatment_mean: float,
    treatment_sd: float,
    treatment_n: int,
    *,
    alpha: float = 0.05,
) -> WelchTest:
    """Welch's t-test from summary statistics (sample standard deviations, ``ddof=1``):
    ``scipy.stats.ttest_ind_from_stats(..., equal_var=False)``.

    When both variances are 0 the test is degenerate: ``t = 0``, ``p = 1`` for equal
    means, else ``t = +-inf``, ``p = 0``.

    Raises:
        ValueError: an arm with fewer than 2 observations or a negative deviation.
    """
    if control_n < 2 or treatment_n < 2:
        raise ValueError("each arm needs at least 2 observations")
    if control_sd < 0 or treatment_sd < 0:
        raise ValueError("standard deviations must be >= 0")
    a, b = control_sd**2 / control_n, treatment_sd**2 / treatment_n
    difference = treatment_mean - control_mean
    se = math.sqrt(a + b)
    if se == 0:
        t = 0.0 if difference == 0 else math.copysign(math.inf, difference)
        df = float(control_n + treatment_n - 2)
        p_value = 1.0 if difference == 0 else 0.0
        ci_low = ci_high = difference
    else:
        result = stats.ttest_ind_from_stats(
            treatment_mean,
            treatment_sd,
            treatment_n,
            control_mean,
            control_sd,
            control_n,
            equal_var=False,
        )
        t, p_value = float(result.statistic), float(result.pvalue)
        # Welch-Satterthwaite: the df scipy used (ttest_ind_from_stats does not return it).
        df = (a + b) ** 2 / (a**2 / (control_n - 1) + b**2 / (treatment_n - 1))
        ci_low, ci_high = (float(x) for x in stats.t.interval(1 - alpha, df, difference, se))
    return WelchTest(
        control_mean=control_mean,
        treatment_mean=treatment_mean,
        difference=difference,
        t=t,
        df=df,
        p_value=p_value,
        ci_low=ci_low,
        ci_high=ci_high,
        alpha=alpha,
        significant=p_value < alpha,
    )


def welch_ttest(
    control: Sequence[float] | np.ndarray,
    treatment: Sequence[float] | np.ndarray,
    *,
    alpha: float = 0.05,
) -> WelchTest:
    """Welch's t-test of two samples (``scipy.stats.ttest_ind(treatment, control,
    equal_var=False)``).

    Raises:
        ValueError: a sample with NaN or fewer than 2 observations.
    """
    c = np.asarray(control, dtype=np.float64)
    t = np.asarray(treatment, dtype=np.float64)
    if np.isnan(c).any() or np.isnan(t).any():
        raise ValueError("samples must not contain NaN")
    if c.size < 2 or t.size < 2:
        raise ValueError("each arm needs at least 2 observations")
    return welch_ttest_from_stats(
        float(c.mean()),
        float(c.std(ddof=1)),
        int(c.size),
        float(t.mean()),
        float(t.std(ddof=1)),
        int(t.size),
        alpha=alpha,
    )


# ---------------------------------------------------------------------------- sample ratio


@dataclass(frozen=True)
class SampleRatioCheck:
    """Sample-ratio-mismatch check: do the arm sizes match the split?

    Attributes:
        chi2: the goodness-of-fit statistic.
        p_value: its p-value (``k - 1`` degrees of freedom over arms with weight).
        mismatch: ``p_value < threshold``: assignment or logging is broken, do not
            trust the experiment's results.
        observed: users per arm.
        expected: users per arm the split implies.
        threshold: the p-value threshold.
    """

    chi2: float
    p_value: float
    mismatch: bool
    observed: Mapping[str, int] = field(default_factory=dict)
    expected: Mapping[str, float] = field(default_factory=dict)
    threshold: float = SRM_P_THRESHOLD


def sample_ratio_mismatch(
    counts: Mapping[str, int],
    split: Mapping[str, float] | None = None,
    *,
    threshold: float = SRM_P_THRESHOLD,
) -> SampleRatioCheck:
    """Chi-square goodness of fit (``scipy.stats.chisquare``) of the arm counts against
    the split (default: :data:`~mlgen_runtime.ab.assignment.DEFAULT_SPLIT`).

    Arms of the split missing from ``counts`` have 0 users. Users in an arm of weight
    0 are a mismatch (``p = 0``).

    Raises:
        ValueError: an arm is not in the split, a count is negative, no users, or the
            split is invalid.
    """
    arms = validate_split(split if split is not None else DEFAULT_SPLIT)
    unknown = sorted(set(counts) - {name for name, _ in arms})
    if unknown:
        raise ValueError(f"arm(s) not in the split: {', '.join(unknown)}")
    observed = {name: int(counts.get(name, 0)) for name, _ in arms}
    if any(count < 0 for count in observed.values()):
        raise ValueError("counts must be >= 0")
    total = sum(observed.values())
    if total == 0:
        raise ValueError("no users to check")
    expected = {name: total * buckets / BUCKETS for name, buckets in arms}
    if any(observed[name] > 0 for name, buckets in arms if buckets == 0):
        return SampleRatioCheck(math.inf, 0.0, True, observed, expected, threshold)
    weighted = [name for name, buckets in arms if buckets > 0]
    if len(weighted) < 2:
        return SampleRatioCheck(0.0, 1.0, False, observed, expected, threshold)
    result = stats.chisquare(
        [observed[name] for name in weighted], [expected[name] for name in weighted]
    )
    chi2, p_value = float(result.statistic), float(result.pvalue)
    return SampleRatioCheck(chi2, p_value, p_value < threshold, observed, expected, threshold)


# ---------------------------------------------------------------------------- guardrails


@dataclass(frozen=True)
class ArmMetrics:
    """Serving health of one arm.

    Attributes:
        requests: requests served.
        errors: failed requests.
        latency_p95_ms: 95th-percentile latency, in milliseconds.
    """

    requests: int
    errors: int
    latency_p95_ms: float

    def __post_init__(self) -> None:
        if self.requests <= 0:
            raise ValueError(f"requests must be positive, got {self.requests}")
        if not 0 <= self.errors <= self.requests:
            raise ValueError(f"errors must be between 0 and requests, got {self.errors}")
        if not (math.isfinite(self.latency_p95_ms) and self.latency_p95_ms >= 0):
            raise ValueError(f"latency_p95_ms must be >= 0, got {self.latency_p95_ms}")

    @property
    def error_rate(self) -> float:
        """Errors per request."""
        return self.errors / self.requests

    @classmethod
    def from_samples(cls, latencies_ms: Sequence[float] | np.ndarray, errors: int) -> ArmMetrics:
        """Metrics from per-request latencies (one per request) and an error count."""
        latencies = np.asarray(latencies_ms, dtype=np.float64)
        if latencies.size == 0:
            raise ValueError("no latencies")
        return cls(int(latencies.size), int(errors), float(np.percentile(latencies, 95)))


@dataclass(frozen=True)
class GuardrailCheck:
    """The treatment's serving health against the objectives and the control.

    Attributes:
        passed: no guardrail was violated.
        violations: one sentence per violated guardrail.
        treatment: the treatment's metrics.
        control: the control's metrics (``None`` when not compared).
        latency_slo_p95_ms: the latency objective used.
        error_rate_slo: the error-rate objective used.
    """

    passed: bool
    violations: tuple[str, ...]
    treatment: ArmMetrics
    control: ArmMetrics | None
    latency_slo_p95_ms: float
    error_rate_slo: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "passed": self.passed,
            "violations": list(self.violations),
            "latency_slo_p95_ms": self.latency_slo_p95_ms,
            "error_rate_slo": self.error_rate_slo,
        }


def check_guardrails(
    treatment: ArmMetrics,
    control: ArmMetrics | None = None,
    *,
    latency_slo_p95_ms: float,
    error_rate_slo: float,
    max_latency_regression: float = MAX_LATENCY_REGRESSION,
    alpha: float = 0.05,
) -> GuardrailCheck:
    """Check the treatment arm's latency and errors; any violation stops the rollout.

    Violations: the treatment's p95 latency above ``latency_slo_p95_ms``; its error
    rate above ``error_rate_slo``; and, with a control, its p95 latency more than
    ``max_latency_regression`` (a fraction) above the control's, or its error rate
    significantly above the control's (one-sided pooled z-test,
    ``proportions_ztest(alternative="larger")``, ``p < alpha``).
    """
    violations: list[str] = []
    if treatment.latency_p95_ms > latency_slo_p95_ms:
        violations.append(
            f"treatment p95 latency {treatment.latency_p95_ms:g} ms is above the "
            f"objective {latency_slo_p95_ms:g} ms"
        )
    if treatment.error_rate > error_rate_slo:
        violations.append(
            f"treatment error rate {treatment.error_rate:.4g} is above the objective "
            f"{error_rate_slo:g}"
        )
    if control is not None:
        limit = control.latency_p95_ms * (1.0 + max_latency_regression)
        if treatment.latency_p95_ms > limit:
            violations.append(
                f"treatment p95 latency {treatment.latency_p95_ms:g} ms is more than "
                f"{max_latency_regression * 100:g} % above the control's "
                f"{control.latency_p95_ms:g} ms"
            )
        errors = treatment.errors + control.errors
        if 0 < errors < treatment.requests + control.requests:  # else no variance
            _, one_sided_p = proportions_ztest(
                [treatment.errors, control.errors],
                [treatment.requests, control.requests],
                alternative="larger",
            )
            if float(one_sided_p) < alpha:
                violations.append(
                    f"treatment error rate {treatment.error_rate:.4g} is significantly above "
                    f"the control's {control.error_rate:.4g} (one-sided p = {one_sided_p:.3g})"
                )
    return GuardrailCheck(
        passed=not violations,
        violations=tuple(violations),
        treatment=treatment,
        control=control,
        latency_slo_p95_ms=latency_slo_p95_ms,
        error_rate_slo=error_rate_slo,
    )
