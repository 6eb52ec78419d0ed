"""The Feast helpers that need no Feast: validation, references, the repository folder
(the rest runs against Feast's local provider in integration/test_feature_store_feast.py)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlgen_runtime import feature_store
from mlgen_runtime.schema import Feature

FEATURES = (
    Feature("speed", "numeric", 0, 200, "km/h"),
    Feature("shift", "categorical", 0, 2, "0 = day, 1 = evening, 2 = night"),
)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"speed": np.array([10.0, 55.5, 200.0], np.float32), "shift": [0, 2, 1], "label": [0, 1, 1]}
    )


def test_training_matrix_types_and_order() -> None:
    X, y = feature_store.training_matrix(_frame()[["label", "shift", "speed"]], FEATURES, "label")
    assert X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(X, [[10.0, 0], [55.5, 2], [200.0, 1]])
    np.testing.assert_array_equal(y, [0, 1, 1])


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("speed", np.nan, "1 null values"),
        ("speed", 250.0, "outside \\[0, 200\\]"),
        ("shift", -1, "outside"),
        ("shift", 1.5, "unknown codes"),  # in range, but not one of the integer codes
    ],
)
def test_validation_rejects_bad_values(column: str, value: float, message: str) -> None:
    frame = _frame().astype({column: "float64"})
    frame.loc[1, column] = value
    with pytest.raises(feature_store.FeatureDataError, match=message):
        feature_store.validate_frame(frame, FEATURES)


def test_validation_rejects_a_missing_column() -> None:
    with pytest.raises(feature_store.FeatureDataError, match="'shift' is missing"):
        feature_store.validate_frame(_frame().drop(columns="shift"), FEATURES)


def test_feature_refs_keep_the_order() -> None:
    assert feature_store.feature_refs("v", ["b", "a"]) == ["v:b", "v:a"]


def test_repo_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(feature_store.REPO_ENV, raising=False)
    assert feature_store.repo_dir(tmp_path / "feature_repo") == tmp_path / "feature_repo"
    monkeypatch.setenv(feature_store.REPO_ENV, str(tmp_path / "other"))
    assert feature_store.repo_dir(tmp_path / "feature_repo") == (tmp_path / "other").resolve()


def test_missing_definitions(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no Feast definitions"):
        feature_store.load_definitions(tmp_path)


def test_the_command_writes_the_repositorys_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written: list[tuple[int, int]] = []

    def write_source(rows: int, seed: int) -> Path:
        written.append((rows, seed))
        return tmp_path

    command = partial(
        feature_store.main, prog="fs", repo=tmp_path, write_source=write_source, rows=5
    )
    assert command(["write-source"]) == 0
    assert command(["write-source", "--rows", "9", "--seed", "1"]) == 0
    assert written == [(5, 42), (9, 1)]
    assert capsys.readouterr().out == f"wrote {tmp_path}\n" * 2
    with pytest.raises(SystemExit) as usage:
        command([])
    assert usage.value.code == 2
