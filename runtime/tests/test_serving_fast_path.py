"""The fast path answers exactly as the FastAPI route does, and takes the requests it can."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from serving_support import SCHEMA, model_file, rows, write_model

from mlgen_runtime.serving import Experiment, create_app
from mlgen_runtime.serving.app import require_json
from mlgen_runtime.serving.v2_tensors import input_specs

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


DATATYPES = {spec.as_json()["name"]: spec.as_json()["datatype"] for spec in input_specs(SCHEMA)}


def _v2_tensors(count: int) -> list[dict[str, object]]:
    batch = rows(count)
    return [
        {
            "name": name,
            "datatype": DATATYPES[name],
            "shape": [count],
            "data": [r[name] for r in batch],
        }
        for name in SCHEMA.names
    ]


_PACKED = b"".join(  # the binary extension: each tensor's bytes, in input order (two rows)
    struct.pack("<q", int(row[name]))
    if DATATYPES[name] == "INT64"
    else struct.pack("<f", row[name])
    for name in SCHEMA.names
    for row in rows(2)
)
V2_REQUESTS: dict[str, tuple[bytes, dict[str, str]]] = {
    "json": (json.dumps({"id": "a", "inputs": _v2_tensors(3)}).encode(), JSON_TYPE),
    "user": (
        json.dumps({"inputs": _v2_tensors(1), "parameters": {"user_id": "u-1"}}).encode(),
        JSON_TYPE,
    ),
    "binary output": (
        json.dumps({"inputs": _v2_tensors(2), "parameters": {"binary_data_output": True}}).encode(),
        JSON_TYPE,
    ),
    "wrong datatype": (
        json.dumps({"inputs": [{**_v2_tensors(1)[0], "datatype": "BYTES"}]}).encode(),
        JSON_TYPE,
    ),
    "unknown input": (
        json.dumps({"inputs": [*_v2_tensors(1), {**_v2_tensors(1)[0], "name": "x"}]}).encode(),
        JSON_TYPE,
    ),
    "too many rows": (json.dumps({"inputs": _v2_tensors(5)}).encode(), JSON_TYPE),
    "not json": (b"{nope", JSON_TYPE),
    "oversized": (json.dumps({"inputs": _v2_tensors(1)}).encode() + b" " * 4096, JSON_TYPE),
}


def test_v2_infer_answers_as_the_route_does(model_path: Path) -> None:
    """The middleware answers ``POST /v2/models/{name}/infer`` with the route's own
    answers: results, binary outputs, errors, and the request metrics."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "datatype": DATATYPES[name],
                    "shape": [2],
                    "parameters": {"binary_data_size": 16 if DATATYPES[name] == "INT64" else 8},
                }
                for name in SCHEMA.names
            ]
        }
    ).encode()
    requests = {
        **V2_REQUESTS,
        "binary input": (header + _PACKED, {"Inference-Header-Content-Length": str(len(header))}),
    }
    fast, plain = app_for(model_path, True), app_for(model_path, False)
    with TestClient(fast) as fast_client, TestClient(plain) as plain_client:
        path = f"/v2/models/{fast.title}/infer"
        statuses = {}
        for case, (body, headers) in requests.items():
            via_fast = fast_client.post(path, content=body, headers=headers)
            via_route = plain_client.post(path, content=body, headers=headers)
            assert via_fast.status_code == via_route.status_code, case
            assert via_fast.content == via_route.content, case
            assert via_fast.headers["content-type"] == via_route.headers["content-type"], case
            assert via_fast.headers.get("inference-header-content-length") == (
                via_route.headers.get("inference-header-content-length")
            ), case
            statuses[case] = via_fast.status_code
        fast_metrics = fast_client.get("/metrics").text.splitlines()
        plain_metrics = plain_client.get("/metrics").text.splitlines()
    assert statuses == {
        **dict.fromkeys(["json", "user", "binary output", "binary input"], 200),
        **dict.fromkeys(["wrong datatype", "unknown input", "too many rows", "not json"], 400),
        "oversized": 413,
    }
    counted = [line for line in plain_metrics if line.startswith("model_requests_total{")]
    assert any("/infer" in line for line in counted)
    assert all(line in fast_metrics for line in counted)
