"""The service from create_app: routes, answers, limits, readiness and metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_support import SCHEMA, expected, model_file, rows, write_model

from mlgen_runtime.serving import create_app

METRIC_NAMES = (
    "model_requests_total",
    "model_request_duration_seconds_bucket",
    "model_errors_total",
    "model_prediction_probability_bucket",
    "model_loaded",
)


@pytest.fixture()
def model_path(tmp_path: Path) -> Path:
    return write_model(tmp_path / "model.json")


@pytest.fixture()
def client(model_path: Path) -> Iterator[TestClient]:
    app = create_app(
        schema=SCHEMA, model=model_file(model_path), max_batch_size=8, latency_slo_seconds=0.1
    )
    with TestClient(app) as test_client:
        yield test_client


def problems(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail and all(set(item) == {"loc", "msg", "type"} for item in detail)
    return list(detail)


def test_health_and_ready(client: TestClient, model_path: Path) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    import hashlib

    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()[:12]
    assert ready.json() == {"status": "ready", "model_version": f"sha256-{digest}"}


def test_predict_single_and_batch(client: TestClient) -> None:
    row = SCHEMA.example_row()
    single = client.post("/predict", json=row)
    assert single.status_code == 200, single.text
    body = single.json()
    assert set(body) == {"predictions", "model_version", "variant"}
    assert body["variant"] == "control"
    (prediction,) = body["predictions"]
    assert prediction["probability"] == pytest.approx(expected([row])[0], abs=1e-6)
    assert prediction["label"] == int(prediction["probability"] >= 0.5)
    batch = client.post("/predict", json={"instances": rows(8)})
    served = [p["probability"] for p in batch.json()["predictions"]]
    np.testing.assert_allclose(served, expected(rows(8)), atol=1e-6)


def test_integers_are_numbers(client: TestClient) -> None:
    row = {name: int(value) for name, value in SCHEMA.example_row().items()}
    assert client.post("/predict", json=row).status_code == 200


@pytest.mark.parametrize(
    ("change", "location", "error_type"),
    [
        ({"support_calls": None}, ["body", "support_calls"], "float_type"),
        ({"support_calls": "3"}, ["body", "support_calls"], "float_type"),
        ({"autopay": True}, ["body", "autopay"], "float_type"),
        ({"tenure_months": -1}, ["body", "tenure_months"], "greater_than_equal"),
        ({"tenure_months": 1e9}, ["body", "tenure_months"], "less_than_equal"),
        ({"contract_type": 1.5}, ["body", "contract_type"], "multiple_of"),
        ({"zip_code": 12345}, ["body", "zip_code"], "extra_forbidden"),
    ],
)
def test_invalid_values(
    client: TestClient, change: dict[str, Any], location: list[Any], error_type: str
) -> None:
    (problem,) = problems(client.post("/predict", json={**SCHEMA.example_row(), **change}))
    assert (problem["loc"], problem["type"]) == (location, error_type)
    if error_type == "multiple_of":
        assert problem["msg"] == "contract_type must be one of the integer codes [0, 1, 2]"


def test_missing_feature_and_non_finite_numbers(client: TestClient) -> None:
    row = SCHEMA.example_row()
    del row["tenure_months"]
    (missing,) = problems(client.post("/predict", json=row))
    assert (missing["loc"], missing["msg"]) == (["body", "tenure_months"], "Field required")
    for literal in ("NaN", "Infinity", "-Infinity", "1e400"):
        body = json.dumps(SCHEMA.example_row()).replace("3.0", literal)  # support_calls
        response = client.post(
            "/predict", content=body, headers={"Content-Type": "application/json"}
        )
        (problem,) = problems(response)
        assert (problem["loc"], problem["type"]) == (["body", "support_calls"], "finite_number")


def test_bad_batches(client: TestClient) -> None:
    assert problems(client.post("/predict", json={"instances": []}))[0]["type"] == "too_short"
    oversized = problems(client.post("/predict", json={"instances": rows(9)}))
    assert "at most 8 instances, got 9" in oversized[0]["msg"]
    bad_row = {**SCHEMA.example_row(), "autopay": 2}
    (problem,) = problems(
        client.post("/predict", json={"instances": [SCHEMA.example_row(), bad_row]})
    )
    assert problem["loc"] == ["body", "instances", 1, "autopay"]


MALFORMED = {
    "not json": (b"{not json", 422),
    "empty": (b"", 422),
    "array": (b"[1, 2]", 422),
    "null": (b"null", 422),
    "not utf-8": (b"\xff\xfe{}", 422),
    "duplicate batch": (b'{"instances": [], "instances": "x"}', 422),
    "row not an object": (b'{"instances": [[1, 2, 3, 4]]}', 422),
    # json.loads refuses these with RecursionError / ValueError: FastAPI says 400.
    "deep nesting": (b"[" * 100_000 + b"]" * 100_000, 400),
    "huge integer": (b'{"tenure_months": 1' + b"0" * 5_000 + b"}", 400),
}


@pytest.mark.parametrize(("body", "status"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_bodies(client: TestClient, body: bytes, status: int) -> None:
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["detail"]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_bodies_that_are_not_json_are_refused(client: TestClient, content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = client.post("/predict", content=json.dumps(SCHEMA.example_row()), headers=headers)
    assert response.status_code == 415
    assert "must be JSON" in response.json()["detail"]
    suffixed = client.post(
        "/predict",
        content=json.dumps(SCHEMA.example_row()),
        headers={"Content-Type": "application/vnd.api+json"},
    )
    assert suffixed.status_code == 200  # FastAPI reads */*+json as JSON


def test_oversized_bodies_are_refused_before_parsing(model_path: Path) -> None:
    limit = 2_048
    body = json.dumps({"instances": rows(8)}).encode() + b" " * limit
    valid = json.dumps(SCHEMA.example_row()).encode()
    json_type = {"Content-Type": "application/json"}
    app = create_app(schema=SCHEMA, model=model_file(model_path), max_body_bytes=limit)
    with TestClient(app) as small:
        declared = small.post("/predict", content=body, headers=json_type)
        # An iterator is sent chunked, without Content-Length: counted while read.
        chunked = small.post(
            "/predict", content=iter([body[:1000], body[1000:]]), headers=json_type
        )
        chunked_ok = small.post(
            "/predict", content=iter([valid[:10], valid[10:]]), headers=json_type
        )
        other_path = small.post("/other", content=iter([body[:1000], body[1000:]]))
        metrics = small.get("/metrics").text
    for response in (declared, chunked, other_path):
        assert response.status_code == 413
        assert response.headers["connection"] == "close"
        assert f"MAX_BODY_BYTES ({limit} bytes)" in response.json()["detail"]
    assert chunked_ok.status_code == 200, chunked_ok.text
    assert 'model_requests_total{endpoint="/predict",status="413",variant="none"} 2.0' in metrics
    assert 'model_requests_total{endpoint="other",status="413",variant="none"} 1.0' in metrics


def test_limits_must_be_positive(model_path: Path) -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        create_app(schema=SCHEMA, model=model_file(model_path), max_batch_size=0)
    with pytest.raises(ValueError, match="max_body_bytes"):
        create_app(schema=SCHEMA, model=model_file(model_path), max_body_bytes=0)


def test_openapi_comes_from_the_routes(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    assert set(components["FeatureRow"]["properties"]) == set(SCHEMA.names)
    assert components["FeatureRow"]["properties"]["contract_type"]["enum"] == [0, 1, 2]
    operation = schema["paths"]["/predict"]["post"]
    request = operation["requestBody"]["content"]["application/json"]["schema"]
    assert request == {"$ref": "#/components/schemas/PredictRequest"}
    assert [p["name"] for p in operation["parameters"]] == ["X-User-Id"]
    assert {"200", "400", "413", "415", "422", "500", "503"} <= set(operation["responses"])
    assert set(components["PredictResponse"]["required"]) == {
        "predictions",
        "model_version",
        "variant",
    }
    assert {"/health", "/ready", "/predict"} <= set(schema["paths"])
    assert "/metrics" not in schema["paths"]


def test_metrics_after_requests(client: TestClient) -> None:
    client.post("/predict", json=SCHEMA.example_row())
    client.post("/predict", json={"instances": rows(3)})
    client.post("/predict", json={"instances": []})
    client.get("/health")
    text = client.get("/metrics").text
    for name in METRIC_NAMES:
        assert name in text, name
    assert 'model_requests_total{endpoint="/predict",status="200",variant="control"} 2.0' in text
    assert 'model_requests_total{endpoint="/health",status="200",variant="none"} 1.0' in text
    assert (
        'model_errors_total{endpoint="/predict",reason="invalid_input",variant="none"} 1.0' in text
    )
    assert 'model_prediction_probability_count{variant="control"} 4.0' in text
    assert 'model_prediction_probability_bucket{le="1.0",variant="control"} 4.0' in text
    assert "model_loaded 1.0" in text
    assert 'le="0.1"' in text  # the latency objective is a bucket bound
    assert "_created" not in text


def test_each_app_has_its_own_registry(client: TestClient, model_path: Path) -> None:
    client.post("/predict", json=SCHEMA.example_row())
    with TestClient(create_app(schema=SCHEMA, model=model_file(model_path))) as fresh:
        assert 'endpoint="/predict"' not in fresh.get("/metrics").text


@pytest.mark.parametrize("kind", ["missing", "corrupt", "empty", "other features"])
def test_not_ready_without_a_usable_model(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "model.json"
    if kind == "corrupt":
        path.write_text("this is not a model")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "other features":
        write_model(path, weights=[1.0, 2.0])
    with TestClient(create_app(schema=SCHEMA, model=model_file(path))) as not_ready:
        assert not_ready.get("/health").status_code == 200
        ready = not_ready.get("/ready")
        predict = not_ready.post("/predict", json=SCHEMA.example_row())
        metrics = not_ready.get("/metrics").text
    assert ready.status_code == 503
    assert ready.json()["status"] == "not ready"
    assert str(path) in ready.json()["reason"]
    assert predict.status_code == 503
    assert "model not ready" in predict.json()["detail"]
    assert "model_loaded 0.0" in metrics
    assert (
        'model_errors_total{endpoint="/predict",reason="not_ready",variant="control"} 1.0'
        in metrics
    )
    logged = [r.getMessage() for r in caplog.records if "NOT ready" in r.getMessage()]
    assert len(logged) == 1


@pytest.mark.parametrize("fast_path", [True, False])
def test_a_failing_model_is_a_clean_500(
    model_path: Path, fast_path: bool, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(schema=SCHEMA, model=model_file(model_path), fast_path=fast_path)
    with TestClient(app, raise_server_exceptions=False) as failing:

        def broken(features: np.ndarray) -> np.ndarray:
            raise RuntimeError("boom")

        app.state.models["control"].predict = broken
        response = failing.post("/predict", json=SCHEMA.example_row())
        app.state.models["control"].predict = lambda X: np.full(len(X), np.nan)
        nan = failing.post("/predict", json=SCHEMA.example_row())
        metrics = failing.get("/metrics").text
    assert response.status_code == nan.status_code == 500
    assert response.json() == nan.json() == {"detail": "internal server error"}
    assert (
        'model_errors_total{endpoint="/predict",reason="internal",variant="control"} 2.0' in metrics
    )
    assert any("failed to predict" in r.getMessage() for r in caplog.records)


def test_model_version_override_and_startup_log(
    model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = create_app(schema=SCHEMA, model=model_file(model_path, version="v7"), title="churn")
    with TestClient(app) as client:
        assert client.get("/ready").json()["model_version"] == "v7"
        assert client.post("/predict", json=SCHEMA.example_row()).json()["model_version"] == "v7"
    assert any("churn control model v7 loaded" in r.getMessage() for r in caplog.records)
