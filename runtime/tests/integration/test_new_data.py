"""The new-data retraining trigger on a table that grows: a champion registered (in a real
SQLite MLflow store) with its training cutoff, then rows appended to the Feast source
below and past ``min_new_rows``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import driver_repo, write_drivers

from mlgen_runtime import feature_store, new_data, registry

START = datetime(2026, 1, 1, tzinfo=UTC)


def _champion(client: Any, cutoff: datetime) -> None:
    """Register a version whose run records ``cutoff`` and make it the champion."""
    found = client.get_experiment_by_name("toy")
    experiment = found.experiment_id if found else client.create_experiment("toy")
    run = client.create_run(experiment, tags={registry.TRAINING_CUTOFF_TAG: cutoff.isoformat()})
    client.set_terminated(run.info.run_id)
    if not client.search_registered_models("name='toy'"):
        client.create_registered_model("toy")
    version = client.create_model_version("toy", "file:///nowhere", run.info.run_id)
    client.set_registered_model_alias("toy", registry.CHAMPION, version.version)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MLGEN_PROFILE", raising=False)
    root = driver_repo(tmp_path / "feature_repo")
    write_drivers(root, [1, 2, 3], [START + timedelta(hours=hour) for hour in range(3)])
    feature_store.apply(root)
    return root


def _check(repo: Path, min_rows: int, *extra: str) -> tuple[int, list[str]]:
    started: list[str] = []

    def retrain() -> int:
        started.append("train")
        return 0

    status = new_data.main(
        [*extra, "--min-rows", str(min_rows)],
        prog="new_data",
        feature_store=lambda: feature_store.store(repo),
        view="driver_stats",
        model_name="toy",
        tracking_uri=lambda: registry.default_tracking_uri(Path.cwd()),
        min_new_rows=100,
        retrain=retrain,
    )
    return status, started


def _tracking() -> Any:
    return registry.client(registry.default_tracking_uri(Path.cwd()))


def test_without_a_champion_every_row_is_new(repo: Path) -> None:
    decision = new_data.decide(feature_store.store(repo), "driver_stats", "toy", 3, _tracking())
    assert (decision.new_rows, decision.champion_cutoff, decision.retrain) == (3, None, True)


def test_retraining_starts_once_the_source_gained_enough_rows(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _champion(_tracking(), START + timedelta(hours=2))  # trained on the three rows
    assert _check(repo, 3, "--retrain") == (0, [])
    assert '"new_rows": 0' in capsys.readouterr().out

    later = START + timedelta(days=1)
    write_drivers(repo, [4, 5], [later, later], append=True)  # 2 new rows: below 3
    assert _check(repo, 3, "--retrain") == (0, [])
    assert '"new_rows": 2, "min_new_rows": 3' in capsys.readouterr().out

    write_drivers(repo, [6], [later + timedelta(hours=1)], append=True)  # 3 new: past it
    assert _check(repo, 3) == (new_data.RETRAIN_STATUS, [])  # the workflow dispatches
    assert _check(repo, 3, "--retrain") == (0, ["train"])  # the CronJob trains here
    assert '"retrain": true' in capsys.readouterr().out

    _champion(_tracking(), later + timedelta(hours=1))  # the retrained champion
    assert _check(repo, 1, "--retrain") == (0, [])


def test_a_bad_threshold_is_refused(repo: Path) -> None:
    with pytest.raises(SystemExit):
        _check(repo, 0)
    with pytest.raises(ValueError, match="min_new_rows must be positive"):
        new_data.decide(feature_store.store(repo), "driver_stats", "toy", 0, _tracking())
