"""Online drift: live counts in the reference profile's bins, PSI at scrape time."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_support import SCHEMA, model_file, write_model

from mlgen_runtime.drift import build_profile, save_profile
from mlgen_runtime.serving import create_app
from mlgen_runtime.serving.online_drift import OnlineDrift, ProfileError, load_reference_bins

RNG_SEED = 5


def sample(rows: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Rows of the schema; ``shift`` moves tenure_months up."""
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [
            np.clip(rng.gamma(2.0, 12.0, rows) + shift, 0, 120),
            rng.poisson(2.0, rows).clip(0, 50),
            rng.choice([0, 1, 2], rows, p=[0.5, 0.3, 0.2]),
            rng.choice([0, 1], rows),
        ]
    ).astype(np.float32)


def write_profile(path: Path, X: np.ndarray) -> Path:
    """The reference profile of ``X`` that training writes (the drift package's)."""
    return save_profile(build_profile(X, SCHEMA.names, features=SCHEMA.features), path)


def psi_by_hand(profile: Path, X: np.ndarray) -> dict[str, float]:
    """PSI of each feature of ``X`` computed directly from the profile file."""
    data = json.loads(profile.read_text())
    result = {}
    for index, record in enumerate(data["features"]):
        column = X[:, index]
        if record["kind"] == "numeric":
            expected = np.asarray(record["proportions"])
            bins = np.searchsorted(np.asarray(record["edges"], dtype=np.float32), column, "right")
        else:
            levels = np.asarray(record["levels"])
            expected = np.append(record["counts"], 0) / record["n"]
            bins = np.searchsorted(levels, column)  # served codes are all levels
        actual = np.bincount(bins, minlength=expected.size) / len(column)
        e, a = np.maximum(expected, 1e-4), np.maximum(actual, 1e-4)
        result[record["name"]] = float(np.sum((a - e) * np.log(a / e)))
    return result


@pytest.fixture()
def profile(tmp_path: Path) -> Path:
    return write_profile(tmp_path / "reference_profile.json", sample(5_000, RNG_SEED))


def feed(monitor: OnlineDrift, X: np.ndarray) -> None:
    """Count ``X`` as requests of mixed batch sizes would arrive."""
    sizes = np.random.default_rng(0).choice([1, 1, 1, 3, 8, 64, 300], size=len(X))
    start = 0
    for size in sizes:
        if start >= len(X):
            break
        monitor.update(X[start : start + size])
        start += size


@pytest.mark.parametrize("shift", [0.0, 20.0])
def test_psi_equals_the_profile_formula(profile: Path, shift: float) -> None:
    X = sample(3_000, seed=11, shift=shift)
    monitor = OnlineDrift.from_file(profile, SCHEMA.names, window_rows=1_000_000, min_rows=1)
    feed(monitor, X)
    online = monitor.psi()
    assert online is not None and list(online) == list(SCHEMA.names)
    for name, value in psi_by_hand(profile, X).items():
        assert online[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert (online["tenure_months"] > 0.2) is (shift > 0)


def test_the_window_slides_and_memory_stays_fixed(profile: Path) -> None:
    monitor = OnlineDrift.from_file(profile, SCHEMA.names, window_rows=500, min_rows=100)
    sizes = [a.nbytes for a in (monitor._current, monitor._previous, monitor._buffer)]
    feed(monitor, sample(4_000, seed=12))
    moved = sample(3_000, seed=13, shift=20.0)
    feed(monitor, moved)
    rows = monitor.rows
    assert 500 <= rows < 1_000 + 300
    assert [a.nbytes for a in (monitor._current, monitor._previous, monitor._buffer)] == sizes
    assert all(counts.sum() == rows for counts in monitor.counts().values())
    online = monitor.psi()
    assert online is not None
    for name, value in psi_by_hand(profile, moved[-rows:]).items():
        assert online[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    monitor.reset()
    assert monitor.rows == 0 and monitor.psi() is None


def test_the_service_exports_psi_at_scrape_time(profile: Path, tmp_path: Path) -> None:
    X = sample(120, seed=14, shift=20.0)
    rows = [dict(zip(SCHEMA.names, map(float, x), strict=True)) for x in X]
    app = create_app(
        schema=SCHEMA,
        model=model_file(write_model(tmp_path / "model.json")),
        reference_profile=profile,
        drift_min_rows=100,
    )
    with TestClient(app) as client:
        for row in rows[:60]:
            assert client.post("/predict", json=row).status_code == 200
        early = client.get("/metrics").text
        assert client.post("/predict", json={"instances": rows[60:]}).status_code == 200
        client.post("/predict", json={"instances": []})  # invalid rows are not counted
        text = client.get("/metrics").text
    assert "model_drift_window_rows 60.0" in early
    assert "model_feature_psi{" not in early  # fewer rows than drift_min_rows
    assert "model_drift_window_rows 120.0" in text
    for name, value in psi_by_hand(profile, X).items():
        match = re.search(r'model_feature_psi\{feature="' + name + r'"\} (\S+)', text)
        assert match, name
        assert float(match.group(1)) == pytest.approx(value, rel=1e-6), name


@pytest.mark.parametrize("kind", ["missing", "corrupt", "other format", "other features", "off"])
def test_online_drift_turns_off_with_one_log_line(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "reference_profile.json"
    if kind == "corrupt":
        path.write_text("{not json")
    elif kind == "other format":
        path.write_text(json.dumps({"format": "something-else", "version": 1}))
    elif kind == "other features":
        write_profile(path, sample(500, seed=1))
        data = json.loads(path.read_text())
        data["features"] = data["features"][:2]
        path.write_text(json.dumps(data))
    caplog.set_level(logging.INFO)
    app = create_app(
        schema=SCHEMA,
        model=model_file(write_model(tmp_path / "model.json")),
        reference_profile=None if kind == "off" else path,
        drift_min_rows=1,
    )
    with TestClient(app) as client:
        assert client.post("/predict", json=SCHEMA.example_row()).status_code == 200
        text = client.get("/metrics").text
    assert "model_feature_psi" not in text and "model_drift_window_rows" not in text
    assert app.state.online_drift is None
    logged = [r.getMessage() for r in caplog.records if "online drift" in r.getMessage()]
    assert len(logged) == 1, logged
    assert ("online drift off" if kind == "off" else "online drift OFF") in logged[0]


def test_profile_reader_errors(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_reference_bins(tmp_path / "none.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ProfileError, match="not a JSON object"):
        load_reference_bins(tmp_path / "list.json")
    (tmp_path / "v2.json").write_text(json.dumps({"format": "x.reference-profile", "version": 2}))
    with pytest.raises(ProfileError, match="version 1"):
        load_reference_bins(tmp_path / "v2.json")
    with pytest.raises(ValueError, match="positive"):
        OnlineDrift([], window_rows=0)
