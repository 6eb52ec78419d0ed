"""The fast path answers exactly as the FastAPI route does, and takes the requests it can."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from serving_support import SCHEMA, model_file, rows, write_model

from mlgen_runtime.serving import Experiment, create_app
from mlgen_runtime.serving.app import require_json

ROW = SCHEMA.example_row()
JSON_TYPE = {"Content-Type": "application/json"}
# (body, headers): valid, invalid, oversized, other content types, user ids, oddities.
REQUESTS = {
    "single": (json.dumps(ROW), JSON_TYPE),
    "batch": (json.dumps({"instances": rows(3)}), JSON_TYPE),
    "body user": (json.dumps({**ROW, "user_id": "user-3"}), JSON_TYPE),
    "integer user": (json.dumps({**ROW, "user_id": 12}), JSON_TYPE),
    "header user": (json.dumps(ROW), {**JSON_TYPE, "X-User-Id": "user-9"}),
    "empty header user": (json.dumps(ROW), {**JSON_TYPE, "X-User-Id": ""}),
    "long header user": (json.dumps(ROW), {**JSON_TYPE, "X-User-Id": "u" * 257}),
    "charset": (json.dumps(ROW), {"Content-Type": "application/json; charset=utf-8"}),
    "upper case type": (json.dumps(ROW), {"Content-Type": "Application/JSON"}),
    "+json": (json.dumps(ROW), {"Content-Type": "application/problem+json"}),
    "no content type": (json.dumps(ROW), {}),
    "text/plain": (json.dumps(ROW), {"Content-Type": "text/plain"}),
    "bom": ("\ufeff" + json.dumps(ROW), JSON_TYPE),
    "out of range": (json.dumps({**ROW, "tenure_months": -1}), JSON_TYPE),
    "bad code": (json.dumps({**ROW, "contract_type": 0.5}), JSON_TYPE),
    "extra field": (json.dumps({**ROW, "x": 1}), JSON_TYPE),
    "string number": (json.dumps({**ROW, "autopay": "0"}), JSON_TYPE),
    "bad user id": (json.dumps({**ROW, "user_id": True}), JSON_TYPE),
    "NaN": (json.dumps(ROW).replace("3.0", "NaN"), JSON_TYPE),
    "too many rows": (json.dumps({"instances": rows(5)}), JSON_TYPE),
    "empty": ("", JSON_TYPE),
    "not json": ("{nope", JSON_TYPE),
    "oversized": (json.dumps({"instances": rows(4)}) + " " * 4096, JSON_TYPE),
}
FAST = {"single", "batch", "body user", "integer user", "header user", "charset", "upper case type"}
"""The requests the fast path answers itself; the others reach the route."""
NOT_ROUTED = {"oversized", "not json"}
"""Never reach the route's dependency: refused in front of the app (413), or by FastAPI
while it parses the body, before dependencies run."""


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    treatment = write_model(tmp_path_factory.mktemp("t") / "treatment.json", [0.1] * 4)
    path = write_model(tmp_path_factory.mktemp("c") / "model.json")
    (path.parent / "treatment").symlink_to(treatment)
    return path


def app_for(model_path: Path, fast_path: bool):  # type: ignore[no-untyped-def]
    experiment = Experiment("exp", model_path.parent / "treatment", 0.5)
    return create_app(
        schema=SCHEMA,
        model=model_file(model_path),
        max_batch_size=4,
        max_body_bytes=4096,
        experiment=experiment,
        fast_path=fast_path,
    )


def test_both_paths_give_the_same_answers(model_path: Path) -> None:
    routed: list[str] = []

    def counting_require_json(request: Request) -> None:
        routed.append(request.headers.get("x-test-name", ""))
        require_json(request)

    fast, plain = app_for(model_path, True), app_for(model_path, False)
    fast.dependency_overrides[require_json] = counting_require_json
    with TestClient(fast) as fast_client, TestClient(plain) as plain_client:
        for name, (body, headers) in REQUESTS.items():
            sent = {**headers, "X-Test-Name": name}
            via_fast = fast_client.post("/predict", content=body.encode(), headers=sent)
            via_route = plain_client.post("/predict", content=body.encode(), headers=sent)
            assert via_fast.status_code == via_route.status_code, name
            assert via_fast.content == via_route.content, name
            assert via_fast.headers["content-type"] == via_route.headers["content-type"], name
        fast_metrics = fast_client.get("/metrics").text
        plain_metrics = plain_client.get("/metrics").text
    assert set(REQUESTS) - set(routed) == FAST | NOT_ROUTED
    assert fast_metrics.count("model_requests_total{") == plain_metrics.count(
        "model_requests_total{"
    )
    for line in plain_metrics.splitlines():
        if line.startswith(("model_requests_total{", "model_errors_total{")):
            assert line in fast_metrics.splitlines(), line


def test_chunked_bodies_take_the_fast_path_too(model_path: Path) -> None:
    body = json.dumps(ROW).encode()
    with TestClient(app_for(model_path, True)) as client:
        response = client.post("/predict", content=iter([body[:5], body[5:]]), headers=JSON_TYPE)
    assert response.status_code == 200, response.text
