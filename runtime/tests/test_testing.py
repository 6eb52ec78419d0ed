"""mlgen_runtime.testing: isolated stores, the trained-model record, and schemathesis
fuzzing of a real app."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from serving_support import SCHEMA, model_file, write_model

from mlgen_runtime.serving import create_app
from mlgen_runtime.testing import TrainedModel, fuzz_app, isolated_stores

pytest.importorskip("schemathesis")  # the ``test`` extra


def test_a_trained_model_names_its_exported_artifact(tmp_path: Path) -> None:
    model = object()
    trained = TrainedModel(model, {"artifact": "model.onnx"}, tmp_path)
    assert trained.artifact == tmp_path / "model.onnx"
    assert tuple(trained) == (model, {"artifact": "model.onnx"}, tmp_path)  # unpacks


def test_isolated_stores_copy_the_feature_repo_and_restore_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "feature_repo"
    (repo / "data").mkdir(parents=True)
    (repo / "definitions.py").write_text("# definitions\n")
    (repo / "data" / "big.parquet").write_text("data")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///real.db")
    monkeypatch.delenv("FEATURE_REPO_DIR", raising=False)
    with isolated_stores(tmp_path / "stores", repo) as root:
        copy = Path(os.environ["FEATURE_REPO_DIR"])
        assert copy == root / "feature_repo" and (copy / "definitions.py").is_file()
        assert not (copy / "data").exists()
        assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{root / 'mlflow.db'}"
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///real.db"
    assert "FEATURE_REPO_DIR" not in os.environ


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_the_runtime_app_conforms_to_its_own_schema(tmp_path: Path, mode: str) -> None:
    app = create_app(schema=SCHEMA, model=model_file(write_model(tmp_path / "m.json")))
    report = fuzz_app(app, mode, max_examples=25)
    assert "POST /predict" in report.operations and not report.server_errors
    statuses = {status for _, status in report.answers}
    assert statuses <= ({200} if mode == "positive" else {200, 400, 404, 413, 415, 422}), report
    assert str(report).startswith(f"{mode} {report.total} (")


def test_a_server_error_fails_the_fuzzing() -> None:
    app = FastAPI()

    @app.get("/boom", responses={500: {"description": "documented, still a failure"}})
    def boom(n: int) -> JSONResponse:
        return JSONResponse({"n": n}, status_code=500 if n > 5 else 200)

    with pytest.raises(BaseException) as failure:  # schemathesis' FailureGroup
        fuzz_app(app, "positive", max_examples=50)
    assert "Server error" in str(failure.value) and "[500]" in str(failure.value)
