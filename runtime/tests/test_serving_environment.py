"""The service configured from environment variables (app_from_env and its readers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serving_support import SCHEMA, load_logistic, write_model

from mlgen_runtime.serving import app_from_env
from mlgen_runtime.serving.environment import flag_from_env, path_from_env, positive_int_from_env


def test_readers() -> None:
    assert positive_int_from_env("N", 5, {}) == 5
    assert positive_int_from_env("N", 5, {"N": " 3 "}) == 3
    for bad in ("zero", "0", "-1", "1.5"):
        with pytest.raises(ValueError, match="N must be a positive integer"):
            positive_int_from_env("N", 5, {"N": bad})
    for text, expected in (("", True), ("1", True), ("on", True), ("0", False), ("OFF", False)):
        assert flag_from_env("F", {"F": text}) is expected
    assert flag_from_env("F", {}) is True
    with pytest.raises(ValueError, match="F must be"):
        flag_from_env("F", {"F": "maybe"})
    assert path_from_env("P", Path("d"), {}) == Path("d")
    assert path_from_env("P", Path("d"), {"P": "/x/y"}) == Path("/x/y")


def test_app_from_env(tmp_path: Path) -> None:
    model = write_model(tmp_path / "elsewhere.json")
    environ = {
        "MODEL_PATH": str(model),
        "MODEL_VERSION": "v9",
        "MAX_BATCH_SIZE": "2",
        "MAX_BODY_BYTES": "4096",
        "ONLINE_DRIFT": "0",
        "AB_EXPERIMENT": "exp",
        "AB_TREATMENT_MODEL_PATH": str(model),
    }
    app = app_from_env(
        schema=SCHEMA,
        load_model=load_logistic,
        default_model_path=tmp_path / "missing.json",
        environ=environ,
        title="churn",
    )
    row = SCHEMA.example_row()
    with TestClient(app) as client:
        ready = client.get("/ready").json()
        too_many = client.post("/predict", json={"instances": [row] * 3})
        too_large = client.post(
            "/predict", content=b" " * 5000, headers={"Content-Type": "application/json"}
        )
    assert ready["model_version"] == "v9" and ready["experiment"] == "exp"
    assert too_many.status_code == 422 and too_large.status_code == 413
    assert app.title == "churn" and app.state.online_drift is None


def test_explicit_values_win_and_defaults_apply(tmp_path: Path) -> None:
    model = write_model(tmp_path / "model.json")
    app = app_from_env(
        schema=SCHEMA,
        load_model=load_logistic,
        default_model_path=model,
        max_batch_size=1,
        environ={"MAX_BATCH_SIZE": "bad", "MODEL_PATH": ""},
    )
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 200
        batch = client.post("/predict", json={"instances": [SCHEMA.example_row()] * 2})
    assert batch.status_code == 422
    with pytest.raises(ValueError, match="ONLINE_DRIFT"):
        app_from_env(
            schema=SCHEMA,
            load_model=load_logistic,
            default_model_path=model,
            environ={"ONLINE_DRIFT": "maybe"},
        )
