"""The registry helpers that need no MLflow (the rest is in integration/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgen_runtime import registry


def test_tracking_uri_and_requirements(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert registry.default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert registry.default_tracking_uri(tmp_path) == "http://mlflow:5000"
    assert registry.artifact_location("http://mlflow:5000") is None
    pyproject = tmp_path / "pyproject.toml"
    assert registry.project_requirements(pyproject) is None
    pyproject.write_text('[project]\ndependencies = ["numpy>=1.26"]\n', encoding="utf-8")
    assert registry.project_requirements(pyproject) == ["numpy>=1.26"]
