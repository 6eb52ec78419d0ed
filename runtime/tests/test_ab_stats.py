"""A/B statistics against statsmodels and scipy computed here, and the module's boundaries."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.power import NormalIndPower, tt_ind_solve_power, zt_ind_solve_power
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    proportions_ztest,
)

from mlgen_runtime.ab import stats as ab
from mlgen_runtime.ab.assignment import assign


def test_the_assignment_package_does_not_import_the_statistics() -> None:
    code = (
        "import sys, mlgen_runtime.ab, mlgen_runtime.ab.assignment; "
        "print(sorted(m for m in sys.modules if m.startswith(('statsmodels', 'scipy', "
        "'mlgen_runtime.ab.stats'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- sample size


@pytest.mark.parametrize(
    ("baseline", "mde", "relative", "alpha", "power", "ratio"),
    [
        (0.10, 0.01, False, 0.05, 0.80, 1.0),
        (0.02, 0.002, False, 0.01, 0.90, 1.0),
        (0.50, -0.05, False, 0.05, 0.80, 2.5),
        (0.30, 0.05, True, 0.10, 0.95, 1.0),
        (0.05, 0.10, True, 0.05, 0.80, 0.5),
    ],
)
def test_sample_size_proportions_is_statsmodels(
    baseline: float, mde: float, relative: bool, alpha: float, power: float, ratio: float
) -> None:
    result = ab.sample_size_proportions(
        baseline, mde, relative=relative, alpha=alpha, power=power, ratio=ratio
    )
    treatment = baseline * (1 + mde) if relative else baseline + mde
    h = proportion_effectsize(treatment, baseline)
    expected = NormalIndPower().solve_power(
        effect_size=h, alpha=alpha, power=power, ratio=ratio, alternative="two-sided"
    )
    assert result.effect_size == pytest.approx(abs(h), rel=1e-12)
    assert result.n_control_exact == pytest.approx(expected, rel=1e-6)
    assert result.n_control == math.ceil(result.n_control_exact)
    assert result.n_treatment == math.ceil(result.n_control_exact * ratio)
    assert result.total == result.n_control + result.n_treatment
    # The design reaches the power it was asked for (statsmodels' power function).
    reached = NormalIndPower().power(h, result.n_control, alpha, ratio=ratio)
    assert reached >= power - 1e-9


@pytest.mark.parametrize("test", ["z", "t"])
@pytest.mark.parametrize(
    ("sd", "effect", "alpha", "power", "ratio"),
    [(10.0, 1.0, 0.05, 0.8, 1.0), (3.5, -0.4, 0.01, 0.9, 2.0), (1.0, 0.8, 0.05, 0.5, 1.0)],
)
def test_sample_size_means_is_statsmodels(
    sd: float, effect: float, alpha: float, power: float, ratio: float, test: str
) -> None:
    result = ab.sample_size_means(sd, effect, alpha=alpha, power=power, ratio=ratio, test=test)  # type: ignore[arg-type]
    solve = zt_ind_solve_power if test == "z" else tt_ind_solve_power
    expected = solve(
        effect_size=effect / sd, alpha=alpha, power=power, ratio=ratio, alternative="two-sided"
    )
    assert result.n_control_exact == pytest.approx(expected, rel=1e-6)


def test_sample_size_rule_of_thumb() -> None:
    # 16 / d^2 per arm at alpha 0.05, power 0.8 (Lehr's rule); a t-test needs a bit more.
    z = ab.sample_size_means(1.0, 0.2)
    assert z.n_control == pytest.approx(16 / 0.04, rel=0.02)
    assert 0 < ab.sample_size_means(1.0, 0.2, test="t").n_control - z.n_control <= 2


@pytest.mark.parametrize(
    "arguments",
    [
        {"baseline_rate": 0.0, "mde": 0.01},
        {"baseline_rate": 0.5, "mde": 0.0},
        {"baseline_rate": 0.95, "mde": 0.1},
        {"baseline_rate": 0.1, "mde": 0.01, "alpha": 0.0},
        {"baseline_rate": 0.1, "mde": 0.01, "power": 1.0},
        {"baseline_rate": 0.1, "mde": 0.01, "ratio": 0.0},
    ],
)
def test_sample_size_rejects_bad_designs(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ab.sample_size_proportions(**arguments)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ab.sample_size_means(1.0, 0.0)
    with pytest.raises(ValueError):
        ab.sample_size_means(1.0, 0.1, test="u")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- tests


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5_000), st.integers(1, 5_000), st.data())
def test_two_proportion_ztest_is_statsmodels(n_c: int, n_t: int, data: st.DataObject) -> None:
    s_c = data.draw(st.integers(0, n_c))
    s_t = data.draw(st.integers(0, n_t))
    result = ab.two_proportion_ztest(s_c, n_c, s_t, n_t)
    assert result.difference == pytest.approx(s_t / n_t - s_c / n_c)
    if s_c + s_t in (0, n_c + n_t):  # no variance: statsmodels gives NaN
        assert (result.z, result.p_value, result.significant) == (0.0, 1.0, False)
        return
    z, p_value = proportions_ztest([s_t, s_c], [n_t, n_c])
    assert result.z == pytest.approx(z, rel=1e-12, abs=1e-12)
    assert result.p_value == pytest.approx(p_value, rel=1e-12)
    low, high = confint_proportions_2indep(s_t, n_t, s_c, n_c, method="wald", compare="diff")
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high))
    assert result.significant == (p_value < 0.05)


def test_two_proportion_ztest_without_variance_and_bad_counts() -> None:
    result = ab.two_proportion_ztest(0, 100, 0, 200)
    assert result.z == 0.0 and result.p_value == 1.0 and result.relative_lift is None
    with pytest.raises(ValueError):
        ab.two_proportion_ztest(11, 10, 1, 10)
    with pytest.raises(ValueError):
        ab.two_proportion_ztest(0, 0, 1, 10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_welch_ttest_is_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    control = rng.normal(10.0, 2.0, size=200 + 50 * seed)
    treatment = rng.normal(10.4, 3.5, size=150 + 80 * seed)
    result = ab.welch_ttest(control, treatment, alpha=0.1)
    expected = stats.ttest_ind(treatment, control, equal_var=False)
    assert result.t == pytest.approx(expected.statistic, rel=1e-10)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.df == pytest.approx(expected.df, rel=1e-10)
    interval = expected.confidence_interval(0.9)
    assert result.ci_low == pytest.approx(interval.low, rel=1e-9)
    assert result.ci_high == pytest.approx(interval.high, rel=1e-9)
    assert result.significant == (expected.pvalue < 0.1)


def test_welch_ttest_degenerate_and_bad_input() -> None:
    assert ab.welch_ttest([1.0, 1.0, 1.0], [1.0, 1.0]).p_value == 1.0
    assert ab.welch_ttest([1.0, 1.0, 1.0], [2.0, 2.0]).p_value == 0.0
    with pytest.raises(ValueError):
        ab.welch_ttest([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        ab.welch_ttest([1.0, math.nan], [1.0, 2.0])
    with pytest.raises(ValueError):
        ab.welch_ttest_from_stats(1.0, -1.0, 10, 1.0, 1.0, 10)


# ---------------------------------------------------------------------------- sample ratio


def test_sample_ratio_mismatch_is_scipys_chisquare() -> None:
    fine = ab.sample_ratio_mismatch({"control": 50_400, "treatment": 49_600})
    expected = stats.chisquare([50_400, 49_600], [50_000, 50_000])
    assert fine.chi2 == pytest.approx(expected.statistic)
    assert fine.p_value == pytest.approx(expected.pvalue)
    assert not fine.mismatch

    broken = ab.sample_ratio_mismatch({"control": 51_000, "treatment": 49_000})
    assert broken.p_value < ab.SRM_P_THRESHOLD and broken.mismatch

    split = {"control": 0.9, "a": 0.05, "b": 0.05}
    weighted = ab.sample_ratio_mismatch({"control": 9_000, "a": 560, "b": 440}, split)
    expected = stats.chisquare([9_000, 560, 440], [9_000, 500, 500])
    assert weighted.p_value == pytest.approx(expected.pvalue)
    assert weighted.expected == {"control": 9_000, "a": 500, "b": 500}


def test_sample_ratio_mismatch_of_real_assignments_is_fine() -> None:
    split = {"control": 0.7, "treatment": 0.3}
    counts = Counter(assign(f"user-{i}", "srm", split) for i in range(50_000))
    assert not ab.sample_ratio_mismatch(counts, split).mismatch


def test_sample_ratio_mismatch_edge_cases() -> None:
    split = {"control": 1.0, "holdout": 0.0}
    assert ab.sample_ratio_mismatch({"control": 10, "holdout": 1}, split).mismatch
    assert not ab.sample_ratio_mismatch({"control": 10}, split).mismatch
    with pytest.raises(ValueError, match="not in the split"):
        ab.sample_ratio_mismatch({"control": 10, "other": 3})
    with pytest.raises(ValueError):
        ab.sample_ratio_mismatch({"control": 0, "treatment": 0})


# ---------------------------------------------------------------------------- guardrails

SLO = {"latency_slo_p95_ms": 100.0, "error_rate_slo": 0.01}


def test_guardrails_pass_for_a_healthy_treatment() -> None:
    control = ab.ArmMetrics(requests=100_000, errors=20, latency_p95_ms=40.0)
    treatment = ab.ArmMetrics(requests=100_000, errors=25, latency_p95_ms=42.0)
    result = ab.check_guardrails(treatment, control, latency_slo_p95_ms=100.0, error_rate_slo=0.001)
    assert result.passed and result.violations == ()
    assert result.to_dict()["passed"] is True


def test_guardrails_catch_slo_violations() -> None:
    treatment = ab.ArmMetrics(requests=10_000, errors=30, latency_p95_ms=150.0)
    result = ab.check_guardrails(treatment, latency_slo_p95_ms=100.0, error_rate_slo=0.001)
    assert not result.passed and len(result.violations) == 2
    assert "latency" in result.violations[0] and "error rate" in result.violations[1]


def test_guardrails_compare_with_the_control() -> None:
    control = ab.ArmMetrics(requests=50_000, errors=10, latency_p95_ms=40.0)
    slower = ab.ArmMetrics(requests=50_000, errors=10, latency_p95_ms=50.0)
    result = ab.check_guardrails(slower, control, **SLO)
    assert not result.passed and "control" in result.violations[0]

    failing = ab.ArmMetrics(requests=50_000, errors=60, latency_p95_ms=40.0)
    result = ab.check_guardrails(failing, control, **SLO)
    _, one_sided = proportions_ztest([60, 10], [50_000, 50_000], alternative="larger")
    assert one_sided < 0.05
    assert not result.passed and "significantly" in result.violations[0]

    better = ab.ArmMetrics(requests=50_000, errors=0, latency_p95_ms=40.0)
    assert ab.check_guardrails(better, control, **SLO).passed
    none = ab.ArmMetrics(requests=50_000, errors=0, latency_p95_ms=40.0)
    assert ab.check_guardrails(none, better, **SLO).passed  # no errors anywhere: no test


def test_arm_metrics_from_samples() -> None:
    latencies = np.arange(1, 101, dtype=float)
    metrics = ab.ArmMetrics.from_samples(latencies, errors=2)
    assert metrics.requests == 100
    assert metrics.latency_p95_ms == pytest.approx(np.percentile(latencies, 95))
    assert metrics.error_rate == 0.02
    with pytest.raises(ValueError):
        ab.ArmMetrics(requests=10, errors=11, latency_p95_ms=1.0)
    with pytest.raises(ValueError):
        ab.ArmMetrics.from_samples([], errors=0)
