"""Drift on raw data: string levels (chi-square over levels) and the null share per feature."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from raw_support import PREPROCESSING, SCHEMA, table
from scipy import stats

from mlgen_runtime import drift

NAMES = SCHEMA.names


@pytest.fixture(scope="module")
def profile() -> drift.ReferenceProfile:
    return drift.build_profile(table(3_000, seed=1), NAMES, features=SCHEMA.features)


def test_the_profile_keeps_string_levels_and_null_counts(
    profile: drift.ReferenceProfile, tmp_path: Path
) -> None:
    island = profile.features[0]
    assert isinstance(island, drift.CategoricalReference)
    assert island.labels == ("Biscoe", "Dream", "Torgersen", "other")
    data = table(3_000, seed=1)
    assert island.missing == sum(value is None for value in data["island"])
    # the unknown "Atlantis" counts as "other", as the served model sees it
    assert island.counts[3] == data["island"].count("Atlantis")
    bill = profile.features[2]
    assert bill.missing == sum(value is None for value in data["bill_length_mm"]) > 0
    again = drift.load_profile(drift.save_profile(profile, tmp_path / "profile.json"))
    assert again.features[0].labels == island.labels  # type: ignore[union-attr]
    assert again.to_dict() == profile.to_dict()


def test_an_unshifted_window_of_strings_has_not_drifted(profile: drift.ReferenceProfile) -> None:
    report = drift.detect_drift(table(2_000, seed=2), profile)
    assert not report.drift, report.to_dict()


def test_a_shifted_mix_of_levels_is_a_chi_square_drift(profile: drift.ReferenceProfile) -> None:
    window = table(2_000, seed=3)
    window["island"] = ["Dream" if value == "Biscoe" else value for value in window["island"]]
    report = drift.detect_drift(window, profile)
    assert report.drifted_features == ("island",)
    island = report["island"]
    assert island.test == "chi2"
    reference = profile.features[0]
    current = [window["island"].count(level) for level in ("Biscoe", "Dream", "Torgersen")]
    current.append(window["island"].count("Atlantis"))
    expected = stats.chi2_contingency(np.array([reference.counts, current]))  # type: ignore[union-attr]
    assert island.statistic == pytest.approx(expected.statistic)
    assert island.p_value == pytest.approx(expected.pvalue)


def test_codes_and_strings_give_the_same_report(profile: drift.ReferenceProfile) -> None:
    window = table(1_000, seed=4)
    codes = PREPROCESSING.codes(window)
    by_strings = drift.detect_drift(window, profile).to_dict()
    by_codes = drift.detect_drift(codes, profile).to_dict()
    assert by_strings == by_codes


def test_a_changed_null_share_is_a_drift(profile: drift.ReferenceProfile) -> None:
    window = table(2_000, seed=5)
    window["bill_length_mm"] = [
        None if index % 2 else value for index, value in enumerate(window["bill_length_mm"])
    ]
    report = drift.detect_drift(window, profile)
    bill = report["bill_length_mm"]
    assert bill.drifted and bill.null_p_value < 1e-10
    assert bill.null_share == pytest.approx(
        sum(value is None for value in window["bill_length_mm"]) / 2_000
    )
    assert 0 < bill.reference_null_share < 0.2
    assert report.to_dict()["features"]["bill_length_mm"]["null_share"] == bill.null_share
    # the distribution of the values left is unchanged: the null share alone drifted
    assert bill.p_value > 0.05 and bill.psi < 0.2


def test_a_null_only_window_column_of_a_nullable_feature(profile: drift.ReferenceProfile) -> None:
    window = table(500, seed=6)
    window["sex"] = [None] * 500
    sex = drift.detect_drift(window, profile)["sex"]
    assert sex.drifted and (sex.n, sex.missing, sex.null_share) == (0, 500, 1.0)


def write_csv(path: Path, data: dict[str, list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(data)
        for row in zip(*data.values(), strict=True):
            writer.writerow(["" if value is None else value for value in row])
    return path


@pytest.mark.parametrize("shifted", [False, True])
def test_the_command_reads_a_window_of_strings(
    profile: drift.ReferenceProfile,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    shifted: bool,
) -> None:
    path = drift.save_profile(profile, tmp_path / "profile.json")
    window = table(2_000, seed=7)
    if shifted:
        window["sex"] = ["female" if value == "male" else value for value in window["sex"]]
    status = drift.main(
        ["--current", str(write_csv(tmp_path / "w.csv", window)), "--profile", str(path)]
    )
    report = json.loads(capsys.readouterr().out)
    assert status == (1 if shifted else 0)
    assert report["drifted_features"] == (["sex"] if shifted else [])
    assert report["features"]["sex"]["missing"] == sum(value is None for value in window["sex"])


def test_parquet_windows_of_strings(profile: drift.ReferenceProfile, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    window = table(1_000, seed=8)
    path = tmp_path / "w.parquet"
    pq.write_table(pa.table(window), path)
    labels = {"island": profile.features[0].labels, "sex": profile.features[1].labels}  # type: ignore[union-attr]
    read = drift.read_window(path, NAMES, labels)
    np.testing.assert_array_equal(read["island"], PREPROCESSING.codes(window)[:, 0])
    assert (
        drift.detect_drift(read, profile).to_dict() == drift.detect_drift(window, profile).to_dict()
    )


def test_a_coded_window_with_nulls_reads_as_its_codes(
    profile: drift.ReferenceProfile, tmp_path: Path
) -> None:
    """Codes beside nulls (an object column: ``[0.0, 2.0, None]``) stay codes, as an
    all-numeric column does, whatever the file format."""
    from mlgen_runtime.drift._columns import level_codes

    labels = ["Biscoe", "Dream", "Torgersen", "other"]
    codes = level_codes(np.array([0.0, 2, None, "Dream", "Mars"], dtype=object), labels)
    np.testing.assert_array_equal(codes, [0.0, 2.0, np.nan, 1.0, 3.0])
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    coded = PREPROCESSING.codes(table(1_000, seed=9))
    path = tmp_path / "coded.parquet"
    columns = {name: pa.array(coded[:, i], from_pandas=True) for i, name in enumerate(NAMES)}
    pq.write_table(pa.table(columns), path)  # from_pandas: NaN is written as a null
    read = drift.read_window(path, NAMES, {"island": labels})
    np.testing.assert_array_equal(read["island"], coded[:, 0])
    assert (
        drift.detect_drift(read, profile).to_dict() == drift.detect_drift(coded, profile).to_dict()
    )
