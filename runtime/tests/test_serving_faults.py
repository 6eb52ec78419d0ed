"""The TEST-ONLY fault switch (``MLGEN_TEST_FAULTS``): off by default, exact when on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serving_support import SCHEMA, load_logistic, write_model

from mlgen_runtime.serving import app_from_env
from mlgen_runtime.serving.faults import ENV, faults_from_env


def _app(tmp_path: Path, environ: dict[str, str]):  # type: ignore[no-untyped-def]
    model = write_model(tmp_path / "model.json")
    environ = {"MODEL_PATH": str(model), "ONLINE_DRIFT": "0", **environ}
    return app_from_env(
        schema=SCHEMA, load_model=load_logistic, default_model_path=model, environ=environ
    )


def _predict_statuses(tmp_path: Path, environ: dict[str, str], count: int) -> list[int]:
    with TestClient(_app(tmp_path, environ)) as client:
        statuses = [
            client.post("/predict", json=SCHEMA.example_row()).status_code for _ in range(count)
        ]
        metrics = client.get("/metrics").text
    served = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if re.match(r'model_requests_total\{.*endpoint="/predict"', line)
    )
    assert served == count  # every answer, injected ones too, is in the metrics
    return statuses


def test_off_unless_the_variable_is_set(tmp_path: Path) -> None:
    assert faults_from_env({}) is None and faults_from_env({ENV: "  "}) is None
    assert set(_predict_statuses(tmp_path, {}, 50)) == {200}


def test_injected_errors_are_exactly_the_rate(tmp_path: Path) -> None:
    statuses = _predict_statuses(tmp_path, {ENV: "error_rate=0.1"}, 50)
    assert statuses.count(500) == 5 and statuses.count(200) == 45


def test_injected_latency_is_in_the_latency_histogram(tmp_path: Path) -> None:
    with TestClient(_app(tmp_path, {ENV: "latency_ms=60"})) as client:
        statuses = {
            client.post("/predict", json=SCHEMA.example_row()).status_code for _ in range(5)
        }
        metrics = client.get("/metrics").text
    assert statuses == {200}
    buckets = {
        match["le"]: float(match["value"])
        for match in re.finditer(
            r'model_request_duration_seconds_bucket\{[^}]*endpoint="/predict"[^}]*le="(?P<le>[^"]+)"'
            r"[^}]*\} (?P<value>\S+)",
            metrics,
        )
    }
    assert buckets["+Inf"] == 5 and buckets["0.05"] == 0  # every one waited 60 ms at least


@pytest.mark.parametrize(
    "text",
    [
        "errors=0.1",
        "error_rate",
        "error_rate=x",
        "error_rate=2",
        "latency_ms=-1",
        "error_rate=0.1,error_rate=0.2",
    ],
)
def test_a_bad_value_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=ENV):
        faults_from_env({ENV: text})
