"""Drift statistics against scipy, decisions, the profile file and the command line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mlgen_runtime import drift
from mlgen_runtime.schema import Feature

FEATURES = (
    Feature("tenure", "numeric", 0, 120, "Months."),
    Feature("charges", "numeric", 0, 250, "Dollars."),
    Feature("plan", "categorical", 0, 2, "0, 1 or 2."),
    Feature("autopay", "categorical", 0, 1, "0 off, 1 on."),
)
NAMES = [feature.name for feature in FEATURES]
ROWS = 20_000


def make_data(rows: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Training-like data: the model's float32 matrix."""
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [
            rng.gamma(2.0, 12.0, rows) + shift,
            rng.normal(70.0, 20.0, rows),
            rng.choice(3, rows, p=[0.5, 0.3, 0.2]),
            rng.integers(0, 2, rows),
        ]
    ).astype(np.float32)


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return make_data(ROWS, seed=1)


@pytest.fixture(scope="module")
def profile(reference: np.ndarray) -> drift.ReferenceProfile:
    return drift.build_profile(reference, NAMES, features=FEATURES)


def one_column(values: np.ndarray, **kwargs: int) -> drift.ReferenceProfile:
    return drift.build_profile(values[:, None], ["x"], **kwargs)


def test_importing_the_package_does_not_import_scipy() -> None:
    # Serving loads the profile and computes PSIs: scipy.stats costs it a second at start.
    code = "import sys, mlgen_runtime.drift; print(any(m.startswith('scipy') for m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("case", ["continuous", "ties", "rounded", "small", "shifted"])
def test_ks_matches_scipy(case: str) -> None:
    rng = np.random.default_rng(len(case))
    ref, cur = {
        "continuous": (rng.normal(size=3_000), rng.normal(0.03, 1.0, size=7_000)),
        "ties": (rng.poisson(3.0, 4_000), rng.poisson(3.1, 2_500)),
        "rounded": (np.round(rng.normal(size=5_000), 1), np.round(rng.normal(size=900), 1)),
        "small": (rng.normal(size=60), rng.normal(0.5, 1.0, size=25)),
        "shifted": (rng.gamma(2.0, size=8_000), rng.gamma(2.0, size=12_000) + 0.1),
    }[case]
    ref, cur = ref.astype(np.float64), cur.astype(np.float64)

    result = drift.detect_drift(cur[:, None], one_column(ref))["x"]

    asymp = stats.ks_2samp(ref, cur, method="asymp")
    assert result.test == "ks"
    assert result.statistic == pytest.approx(asymp.statistic, rel=1e-12, abs=1e-15)
    assert result.p_value == pytest.approx(asymp.pvalue, rel=1e-9, abs=1e-300)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(-20, 20), min_size=2, max_size=200),
    st.lists(st.integers(-20, 20), min_size=2, max_size=200),
    st.integers(1, 4),
)
def test_ks_statistic_is_scipys_on_any_exact_ecdf(
    ref: list[int], cur: list[int], scale: int
) -> None:
    a, b = np.array(ref, dtype=np.float64) / scale, np.array(cur, dtype=np.float64) / scale
    result = drift.detect_drift(b[:, None], one_column(a))["x"]
    expected = stats.ks_2samp(a, b, method="asymp")
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)


def test_ks_pvalue_for_large_samples_and_exact_near_the_threshold() -> None:
    # Where scipy sums O(n) terms (n D^2 in [2.2, 370)) an approximation is used...
    n1, n2 = 200_000, 150_000
    en = round(n1 * n2 / (n1 + n2))
    d = np.sqrt(np.array([0.5, 2.0, 2.5, 4.0, 8.0, 15.0]) / en)
    expected = stats.kstwo.sf(d, en)
    np.testing.assert_allclose(drift.ks_pvalue(d, n1, n2), expected, rtol=2e-3)
    # ... except near the decision threshold, where it is scipy's exactly.
    near = drift.ks_pvalue(d, n1, n2, threshold=float(expected[3]) * 1.01)
    assert near[3] == expected[3]
    assert drift.ks_pvalue(0.0, 10, 10)[0] == 1.0


def test_sketched_reference_ecdf_stays_close_to_the_full_one() -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.lognormal(1.0, 0.8, size=60_000), rng.lognormal(1.02, 0.8, size=40_000)
    sketch = one_column(ref, max_points=2_000)
    numeric = sketch.features[0]
    assert isinstance(numeric, drift.NumericReference)
    assert not numeric.exact and len(numeric.values) <= 2_000

    result = drift.detect_drift(cur[:, None], sketch)["x"]

    full = stats.ks_2samp(ref, cur, method="asymp")
    assert full.statistic - 1 / 2_000 <= result.statistic <= full.statistic + 1e-12
    assert (result.p_value < 0.05) == (full.pvalue < 0.05)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 500), min_size=2, max_size=6), st.data())
def test_chi2_is_scipys_contingency(ref: list[int], data: st.DataObject) -> None:
    cur = data.draw(st.lists(st.integers(0, 500), min_size=len(ref), max_size=len(ref)))
    statistic, p_value = drift.chi2_homogeneity(np.array(ref), np.array(cur))
    table = np.array([ref, cur], dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        assert (statistic, p_value) == (0.0, 1.0)
        return
    expected = stats.chi2_contingency(table)  # Yates' correction for 2 x 2, like scipy
    assert statistic == pytest.approx(expected.statistic, rel=1e-12, abs=1e-12)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-12)


def test_categorical_feature_uses_chi2_and_psi(
    profile: drift.ReferenceProfile, reference: np.ndarray
) -> None:
    window = make_data(3_000, seed=11)
    window[:, 2] = np.random.default_rng(5).choice(3, size=len(window), p=[0.2, 0.25, 0.55])

    report = drift.detect_drift(window, profile)
    result = report["plan"]

    ref_levels = np.bincount(reference[:, 2].astype(int), minlength=3)
    cur_levels = np.bincount(window[:, 2].astype(int), minlength=3)
    expected = stats.chi2_contingency(np.vstack([ref_levels, cur_levels]))
    assert result.test == "chi2"
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-10)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)
    expected_psi = drift.psi(ref_levels / ref_levels.sum(), cur_levels / cur_levels.sum())
    assert result.psi == pytest.approx(expected_psi)
    assert result.drifted and report.drift and "plan" in report.drifted_features


def test_unseen_category_counts_as_drift(profile: drift.ReferenceProfile) -> None:
    window = make_data(2_000, seed=12)
    window[:300, 3] = 7  # a code training never saw
    result = drift.detect_drift(window, profile)["autopay"]
    assert result.drifted and result.psi > 0.2 and result.p_value < 1e-10


def test_numeric_psi_uses_numpy_quantile_bins(
    reference: np.ndarray, profile: drift.ReferenceProfile
) -> None:
    ref = reference[:, 1]
    numeric = profile.features[1]
    assert isinstance(numeric, drift.NumericReference)
    quantiles = np.quantile(ref.astype(np.float64), np.linspace(0, 1, 11)[1:-1])
    np.testing.assert_array_equal(numeric.edges, np.unique(quantiles.astype(np.float32)))
    np.testing.assert_allclose(numeric.proportions, 0.1, atol=0.01)

    window = make_data(4_000, seed=13)
    window[:, 1] *= 1.1
    result = drift.detect_drift(window, profile)["charges"]

    # A plain per-column PSI: numpy histograms over [-inf, edges..., inf].
    bins = np.concatenate(([-np.inf], numeric.edges, [np.inf]))
    e = np.maximum(np.histogram(ref, bins)[0] / ref.size, 1e-4)
    a = np.maximum(np.histogram(window[:, 1], bins)[0] / len(window), 1e-4)
    assert result.psi == pytest.approx(float(np.sum((a - e) * np.log(a / e))), rel=1e-9)


def test_psi_handles_empty_bins() -> None:
    assert drift.psi(np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.5, 0.0])) == 0.0
    value = drift.psi(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    assert np.isfinite(value) and value > 10


# ---------------------------------------------------------------------------- decisions


def test_the_training_data_itself_is_not_flagged(
    reference: np.ndarray, profile: drift.ReferenceProfile
) -> None:
    report = drift.detect_drift(np.random.default_rng(0).permutation(reference), profile)
    assert not report.drift
    for result in report.features:
        assert result.statistic == pytest.approx(0.0, abs=1e-12)
        assert result.p_value == pytest.approx(1.0)
        assert result.psi == pytest.approx(0.0, abs=1e-12)


def test_false_positive_rate_matches_the_threshold(profile: drift.ReferenceProfile) -> None:
    rejections = tests = 0
    for seed in range(100, 130):
        report = drift.detect_drift(make_data(2_000, seed=seed), profile)
        rejections += sum(result.p_value < 0.05 for result in report.features)
        tests += len(report.features)
        assert all(result.psi < 0.05 for result in report.features)
    assert rejections / tests <= 0.05 + 0.07


def test_shift_and_thresholds(profile: drift.ReferenceProfile) -> None:
    window = make_data(3_000, seed=21, shift=10.0)
    report = drift.detect_drift(window, profile)
    assert report["tenure"].p_value < 1e-20 and report.drifted_features == ("tenure",)
    assert (report.psi_threshold, report.ks_pvalue_threshold) == (0.2, 0.05)
    relaxed = drift.detect_drift(window, profile, psi_threshold=1e9, ks_pvalue_threshold=0.0)
    assert not relaxed.drift
    psi_only = drift.detect_drift(window, profile, ks_pvalue_threshold=0.0)
    assert psi_only.drift == (report["tenure"].psi > 0.2)


def test_missing_values_are_left_out_and_counted() -> None:
    rng = np.random.default_rng(9)
    ref, cur = rng.normal(size=2_000), rng.normal(0.2, 1.0, size=1_500)
    cur[::10] = np.nan
    result = drift.detect_drift(cur[:, None], one_column(ref))["x"]
    assert (result.missing, result.n) == (150, 1_350)
    valid = cur[~np.isnan(cur)]
    assert result.statistic == pytest.approx(stats.ks_2samp(ref, valid).statistic)


def test_columns_by_name_match_the_matrix(profile: drift.ReferenceProfile) -> None:
    window = make_data(2_000, seed=23)
    by_name = {name: window[:, i].astype(np.float64) for i, name in enumerate(NAMES)}
    by_name["unused"] = np.zeros(len(window))
    assert drift.detect_drift(by_name, profile) == drift.detect_drift(window, profile)
    del by_name["autopay"]
    with pytest.raises(drift.DriftInputError, match="autopay"):
        drift.detect_drift(by_name, profile)
    with pytest.raises(drift.DriftInputError, match="columns"):
        drift.detect_drift(window[:, :3], profile)


def test_threads_give_the_same_report(profile: drift.ReferenceProfile) -> None:
    window = make_data(5_000, seed=24)
    threads = drift.detect_drift(window, profile, workers=3)
    assert threads == drift.detect_drift(window, profile, workers=1)


def test_an_empty_column_is_bad_input(profile: drift.ReferenceProfile) -> None:
    window = make_data(100, seed=25)
    window[:, 0] = np.nan
    with pytest.raises(drift.DriftInputError, match="no values"):
        drift.detect_drift(window, profile)


# ---------------------------------------------------------------------------- profile


def test_profile_kinds_and_levels_follow_the_schema(profile: drift.ReferenceProfile) -> None:
    assert profile.feature_names == tuple(NAMES)
    assert (profile.dtype, profile.n_rows) == ("float32", ROWS)
    for feature, ref in zip(FEATURES, profile.features, strict=True):
        assert ref.kind == feature.kind
        if isinstance(ref, drift.CategoricalReference):
            assert tuple(ref.levels.astype(int)) == feature.levels
    unseen_level = np.zeros((50, 1), dtype=np.float32)  # training saw only code 0
    only = drift.build_profile(unseen_level, ["autopay"], features=FEATURES)
    ref = only.features[0]
    assert isinstance(ref, drift.CategoricalReference)
    assert ref.counts.tolist() == [50, 0]


def test_profile_json_round_trip(tmp_path: Path, profile: drift.ReferenceProfile) -> None:
    path = drift.save_profile(profile, tmp_path / "profile.json")
    loaded = drift.load_profile(path)
    assert loaded.to_dict() == profile.to_dict()
    assert json.loads(path.read_text())["format"] == drift.PROFILE_FORMAT
    window = make_data(2_000, seed=26)
    assert drift.detect_drift(window, loaded) == drift.detect_drift(window, profile)

    sketch = one_column(np.random.default_rng(1).normal(size=5_000), max_points=100)
    again = drift.load_profile(drift.save_profile(sketch, tmp_path / "sketch.json"))
    assert again.to_dict() == sketch.to_dict()


def test_profiles_written_by_generated_repositories_still_load(
    tmp_path: Path, profile: drift.ReferenceProfile
) -> None:
    # What a repository generated before the runtime wrote: its package in "format".
    data = profile.to_dict() | {"format": "churn_model.reference-profile"}
    path = tmp_path / "reference_profile.json"
    path.write_text(json.dumps(data, separators=(",", ":")))
    loaded = drift.load_profile(path)
    assert loaded.to_dict() == profile.to_dict()


def test_bad_profiles_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(drift.DriftInputError, match="cannot read"):
        drift.load_profile(tmp_path / "missing.json")
    (tmp_path / "text.json").write_text("not json")
    with pytest.raises(drift.DriftInputError, match="not JSON"):
        drift.load_profile(tmp_path / "text.json")
    (tmp_path / "other.json").write_text('{"format": "other", "version": 1}')
    with pytest.raises(drift.DriftInputError, match="profile"):
        drift.load_profile(tmp_path / "other.json")
    (tmp_path / "v2.json").write_text('{"format": "x.reference-profile", "version": 2}')
    with pytest.raises(drift.DriftInputError, match="version 1"):
        drift.load_profile(tmp_path / "v2.json")
    (tmp_path / "cut.json").write_text('{"format": "x.reference-profile", "version": 1}')
    with pytest.raises(drift.DriftInputError, match="malformed"):
        drift.load_profile(tmp_path / "cut.json")


# ---------------------------------------------------------------------------- command


def write_csv(path: Path, X: np.ndarray, names: list[str]) -> Path:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(names)
        writer.writerows([[f"{value:.9g}" for value in row] for row in X.tolist()])
    return path


def run_cli(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    """The command as a workflow runs it: ``python -m mlgen_runtime.drift``."""
    return subprocess.run(
        [sys.executable, "-m", "mlgen_runtime.drift", *map(str, arguments)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def run_main(capsys: pytest.CaptureFixture[str], *arguments: str | Path) -> tuple[int, str, str]:
    """The same command in this process (scipy is imported once): status, stdout, stderr."""
    try:
        status = drift.main([str(argument) for argument in arguments])
    except SystemExit as error:  # argparse's usage errors
        status = int(error.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def profile_file(tmp_path_factory: pytest.TempPathFactory, profile: drift.ReferenceProfile) -> Path:
    return drift.save_profile(profile, tmp_path_factory.mktemp("profile") / "profile.json")


def test_cli_exit_status_0_without_drift(
    tmp_path: Path, reference: np.ndarray, profile_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    window = write_csv(tmp_path / "window.csv", reference[::-1], NAMES)
    lines = window.read_text().splitlines()
    lines[1] = "," + lines[1].split(",", 1)[1]  # an empty cell: a missing value
    window.write_text("\n".join(lines) + "\n")

    status, out, err = run_main(capsys, "--current", window, "--profile", profile_file)

    assert status == 0, err
    report = json.loads(out)
    assert report["drift"] is False
    assert report["thresholds"] == {"psi": 0.2, "ks_pvalue": 0.05}
    assert report["features"]["tenure"]["missing"] == 1
    assert report["n_rows"] == ROWS


def test_cli_exit_status_1_on_drift(tmp_path: Path, profile_file: Path) -> None:
    X = make_data(3_000, seed=31, shift=15.0)
    # Columns in another order plus an extra one: columns are matched by name.
    table = np.column_stack([X[:, ::-1], np.arange(len(X))])
    window = write_csv(tmp_path / "window.csv", table, [*reversed(NAMES), "customer_id"])

    result = run_cli("--current", window, "--profile", profile_file)
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["drifted_features"] == ["tenure"]


def test_cli_main_takes_a_repositorys_defaults(
    tmp_path: Path, profile_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    window = write_csv(tmp_path / "w.csv", make_data(3_000, seed=32, shift=15.0), NAMES)
    status = drift.main(
        ["--current", str(window)], prog="python -m churn.drift", psi_threshold=1e9,
        ks_pvalue_threshold=0.0, profile=profile_file,
    )  # fmt: skip
    assert status == 0
    assert json.loads(capsys.readouterr().out)["thresholds"] == {"psi": 1e9, "ks_pvalue": 0.0}


@pytest.mark.parametrize(
    "problem", ["missing column", "not a number", "no profile", "no file", "bad threshold"]
)
def test_cli_exit_status_2_on_bad_input(
    tmp_path: Path,
    reference: np.ndarray,
    profile_file: Path,
    problem: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    X = reference[:500].astype(np.float64)
    arguments: list[str | Path] = ["--profile", profile_file]
    if problem == "missing column":
        window = write_csv(tmp_path / "w.csv", X[:, 1:], NAMES[1:])
    else:
        window = write_csv(tmp_path / "w.csv", X, NAMES)
    if problem == "not a number":
        text = window.read_text()
        window.write_text(text.replace("\n", "\nabc" + ",1" * (len(NAMES) - 1) + "\n", 1))
    if problem == "no profile":
        arguments = ["--profile", tmp_path / "none.json"]
    if problem == "no file":
        window = tmp_path / "none.csv"
    if problem == "bad threshold":
        arguments += ["--ks-threshold", "2"]

    status, out, err = run_main(capsys, "--current", window, *arguments)

    assert status == 2
    assert out == ""
    if problem == "missing column":
        assert "tenure" in err


def test_read_window_parquet(tmp_path: Path, reference: np.ndarray) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "window.parquet"
    pq.write_table(pa.table({name: reference[:, i] for i, name in enumerate(NAMES)}), path)
    columns = drift.read_window(path, NAMES)
    np.testing.assert_array_equal(columns["charges"], reference[:, 1].astype(np.float64))
    with pytest.raises(drift.DriftInputError, match="missing column"):
        drift.read_window(path, [*NAMES, "absent"])
