"""Raw rows: a schema with string categories and nullable features served as is.

``/predict`` takes ``"island": "Torgersen"`` and ``null``; v2 takes BYTES tensors for
string categories (checked with ``tritonclient.http`` against a real uvicorn); the model
(:mod:`raw_support`) gets the raw values by feature, as an ONNX graph exported with
preprocessing does.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raw_support import SCHEMA, expected, model_file, raw_rows, table, write_model
from serving_support import uvicorn_app

from mlgen_runtime.inference_client import InferenceClient
from mlgen_runtime.serving import create_app

NAME = "penguins"
ROW = {
    "island": "Torgersen",
    "sex": None,
    "bill_length_mm": None,
    "flipper_length_mm": 190.0,
    "tagged": True,
}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("raw") / "model.json")


@pytest.fixture(scope="module", params=[True, False], ids=["fast path", "route"])
def client(model_path: Path, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    app = create_app(
        schema=SCHEMA,
        model=model_file(model_path),
        title=NAME,
        max_batch_size=64,
        fast_path=request.param,
    )
    with TestClient(app) as test_client:
        yield test_client


def probabilities(response: Any) -> list[float]:
    assert response.status_code == 200, response.text
    return [answer["probability"] for answer in response.json()["predictions"]]


def test_a_raw_row_with_a_string_and_nulls(client: TestClient) -> None:
    served = probabilities(client.post("/predict", json=ROW))
    np.testing.assert_allclose(served, expected([ROW]), atol=1e-6)


def test_a_batch_of_raw_rows(client: TestClient) -> None:
    rows = raw_rows(40)
    served = probabilities(client.post("/predict", json={"instances": rows}))
    np.testing.assert_allclose(served, expected(rows), atol=1e-6)


def test_a_nullable_field_may_be_left_out(client: TestClient) -> None:
    partial = {"island": "Dream", "flipper_length_mm": 200, "tagged": False}
    served = probabilities(client.post("/predict", json=partial))
    np.testing.assert_allclose(served, expected([partial]), atol=1e-6)
    assert served != probabilities(client.post("/predict", json={**partial, "sex": "female"}))


def test_an_unknown_level_counts_as_other(client: TestClient) -> None:
    unknown = probabilities(client.post("/predict", json={**ROW, "island": "Atlantis"}))
    other = probabilities(client.post("/predict", json={**ROW, "island": "other"}))
    assert unknown == other != probabilities(client.post("/predict", json=ROW))


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        ({"sex": "unknown"}, "sex", "sex must be one of ['female', 'male']"),
        ({"flipper_length_mm": None}, "flipper_length_mm", "valid number"),
        ({"island": 3}, "island", "valid string"),
        ({"island": ""}, "island", "at least 1 character"),
        ({"tagged": "yes"}, "tagged", ""),
        ({"bill_length_mm": 500}, "bill_length_mm", "less than or equal to 70"),
    ],
)
def test_invalid_raw_values_get_a_422_naming_the_field(
    client: TestClient, change: dict[str, Any], where: str, message: str
) -> None:
    response = client.post("/predict", json={**ROW, **change})
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert all(problem["loc"][:2] == ["body", where] for problem in problems), problems
    assert any(message in problem["msg"] for problem in problems), problems


def test_the_api_schema_lists_the_levels(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    row = document["components"]["schemas"]["FeatureRow"]
    assert set(row["required"]) == {"flipper_length_mm", "tagged"}
    sex = row["properties"]["sex"]["anyOf"]
    assert {"enum": ["female", "male"], "type": "string"} in sex
    assert row["properties"]["island"]["anyOf"][0]["type"] == "string"
    example = {name: value for name, value in SCHEMA.example_row().items() if value is not None}
    assert row["examples"] == [example]  # the OpenAPI document leaves nulls out


def test_v2_metadata_gives_string_categories_as_bytes(client: TestClient) -> None:
    inputs = client.get(f"/v2/models/{NAME}").json()["inputs"]
    assert [(spec["name"], spec["datatype"]) for spec in inputs] == [
        ("island", "BYTES"),
        ("sex", "BYTES"),
        ("bill_length_mm", "FP32"),
        ("flipper_length_mm", "FP32"),
        ("tagged", "INT64"),
    ]


def v2_inputs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """JSON tensors of raw rows: strings ("" for null) and numbers (null for null)."""
    inputs = []
    for feature in SCHEMA.features:
        values = [row.get(feature.name) for row in rows]
        if feature.string_levels:
            data: list[Any] = ["" if value is None else value for value in values]
            datatype = "BYTES"
        elif feature.type == "boolean":
            data, datatype = [int(value) for value in values], "INT64"
        else:
            data, datatype = values, "FP32"
        inputs.append(
            {"name": feature.name, "datatype": datatype, "shape": [len(rows)], "data": data}
        )
    return inputs


def test_v2_json_bytes_and_nulls(client: TestClient) -> None:
    rows = [ROW, *raw_rows(9)]
    response = client.post(f"/v2/models/{NAME}/infer", json={"inputs": v2_inputs(rows)})
    assert response.status_code == 200, response.text
    (probability,) = [o for o in response.json()["outputs"] if o["name"] == "probabilities"]
    served = np.asarray(probability["data"]).reshape(-1, 2)[:, 1]
    assert float(np.max(np.abs(served - expected(rows)))) < 1e-5


def test_v2_binary_bytes(client: TestClient) -> None:
    """The binary extension's BYTES layout (4-byte length, then the UTF-8 bytes)."""
    rows = raw_rows(3)
    inputs = v2_inputs(rows)
    chunks = []
    for tensor in inputs[:2]:
        raw = b"".join(
            struct.pack("<I", len(text.encode())) + text.encode() for text in tensor.pop("data")
        )
        tensor["parameters"] = {"binary_data_size": len(raw)}
        chunks.append(raw)
    header = json.dumps({"inputs": inputs}).encode()
    response = client.post(
        f"/v2/models/{NAME}/infer",
        content=header + b"".join(chunks),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 200, response.text
    (probability,) = [o for o in response.json()["outputs"] if o["name"] == "probabilities"]
    served = np.asarray(probability["data"]).reshape(-1, 2)[:, 1]
    assert float(np.max(np.abs(served - expected(rows)))) < 1e-5


@pytest.mark.parametrize(
    ("column", "values", "datatype", "message"),
    [
        ("sex", ["male", "robot"], "BYTES", "input 'sex', row 1: sex must be one of"),
        ("flipper_length_mm", [190, None], "FP32", "input 'flipper_length_mm': a null in"),
        ("island", [1.0, 2.0], "FP32", "input 'island': datatype FP32, the model takes BYTES"),
        ("island", [1, "Dream"], "BYTES", "input 'island': data must be BYTES values"),
        ("bill_length_mm", ["a", "b"], "FP32", "input 'bill_length_mm': data must be FP32"),
        ("tagged", [1, 2], "INT64", "input 'tagged', row 1"),
    ],
)
def test_v2_refuses_bad_raw_tensors_naming_the_input(
    client: TestClient, column: str, values: list[Any], datatype: str, message: str
) -> None:
    inputs = v2_inputs(raw_rows(2))
    for tensor in inputs:
        if tensor["name"] == column:
            tensor["data"], tensor["datatype"] = values, datatype
    response = client.post(f"/v2/models/{NAME}/infer", json={"inputs": inputs})
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


VALUES = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=4)
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_no_mutated_raw_body_gets_a_server_error(client: TestClient, data: st.DataObject) -> None:
    """Valid raw tensors with their data, datatype or shape replaced at random: 200 or the
    protocol's 400, never a 5xx."""
    inputs = v2_inputs(raw_rows(data.draw(st.integers(1, 4))))
    for tensor in inputs:
        if data.draw(st.booleans()):
            tensor["data"] = data.draw(st.lists(VALUES, max_size=5))
        if data.draw(st.booleans()):
            tensor["datatype"] = data.draw(st.sampled_from(["FP32", "INT64", "BYTES", "BOOL"]))
        if data.draw(st.booleans()):
            tensor["shape"] = data.draw(st.lists(st.integers(-1, 6), max_size=2))
    body = json.dumps({"inputs": inputs}).encode()  # NaN and Infinity as Python writes them
    response = client.post(f"/v2/models/{NAME}/infer", content=body)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert set(response.json()) == {"error"}


def test_v2_refuses_the_matrix_form(client: TestClient) -> None:
    body = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 5], "data": [0] * 5}]}
    response = client.post(f"/v2/models/{NAME}/infer", json=body)
    assert response.status_code == 400
    assert "unknown input 'features'" in response.json()["error"]


def test_online_drift_counts_nulls_apart(model_path: Path, tmp_path: Path) -> None:
    from mlgen_runtime import drift

    profile = drift.build_profile(table(400), SCHEMA.names, features=SCHEMA.features)
    path = drift.save_profile(profile, tmp_path / "profile.json")
    app = create_app(
        schema=SCHEMA,
        model=model_file(model_path),
        title=NAME,
        reference_profile=path,
        drift_min_rows=10,
    )
    rows = [{**row, "bill_length_mm": None} for row in raw_rows(20)]
    with TestClient(app) as test_client:
        assert test_client.post("/predict", json={"instances": rows}).status_code == 200
        text = test_client.get("/metrics").text
    share = re.search(r'model_feature_null_share\{feature="bill_length_mm"\} (\S+)', text)
    assert share is not None and float(share.group(1)) == 1.0
    psi = re.search(r'model_feature_psi\{feature="island"\} (\S+)', text)
    assert psi is not None
    islands = drift.detect_drift(
        {name: [row.get(name) for row in rows] for name in SCHEMA.names}, profile
    )["island"]
    assert float(psi.group(1)) == pytest.approx(islands.psi, rel=1e-6)


@pytest.fixture(scope="module")
def server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service in a real uvicorn process on loopback; yields ``host:port``."""
    folder = tmp_path_factory.mktemp("raw-app")
    with uvicorn_app(folder, "raw_support", model_path, NAME) as address:
        yield address


@pytest.mark.parametrize("binary_data", [True, False])
@pytest.mark.parametrize("count", [1, 64])
def test_tritonclient_sends_bytes_to_the_real_server(
    server: str, count: int, binary_data: bool
) -> None:
    client = triton.InferenceServerClient(server)
    assert client.is_server_live() and client.is_model_ready(NAME)
    metadata = client.get_model_metadata(NAME)
    rows = [ROW, *raw_rows(count - 1)] if count > 1 else [ROW]
    inputs = []
    for spec, tensor in zip(metadata["inputs"], v2_inputs(rows), strict=True):
        given = triton.InferInput(spec["name"], [count], spec["datatype"])
        if spec["datatype"] == "BYTES":
            values = np.array(tensor["data"], dtype=np.object_)
        elif spec["datatype"] == "INT64":
            values = np.array(tensor["data"], dtype=np.int64)
        else:  # a null is NaN (tritonclient writes it as NaN in JSON too)
            values = np.array([np.nan if v is None else v for v in tensor["data"]], np.float32)
        given.set_data_from_numpy(values, binary_data=binary_data)
        inputs.append(given)
    result = client.infer(NAME, inputs, request_id="raw")
    served = result.as_numpy("probabilities")[:, 1]
    assert float(np.max(np.abs(served - expected(rows)))) < 1e-5
    assert result.get_response()["id"] == "raw"


def test_the_runtime_client_sends_raw_rows(server: str) -> None:
    client = InferenceClient(f"http://{server}", NAME, max_batch_size=30)
    rows = [ROW, *raw_rows(69)]
    result = client.infer_rows(rows, SCHEMA)
    assert float(np.max(np.abs(result.probabilities - expected(rows)))) < 1e-5


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_the_openapi_schema_of_raw_rows_holds_under_fuzzing(model_path: Path, mode: str) -> None:
    """schemathesis from the service's own OpenAPI document: strings, nulls and left-out
    nullable keys generated from the levels and types, never a 5xx, every answer as
    documented."""
    from mlgen_runtime.testing import fuzz_app

    app = create_app(schema=SCHEMA, model=model_file(model_path), title=NAME, max_batch_size=8)
    report = fuzz_app(app, mode, max_examples=60)
    assert "POST /predict" in report.operations and report.total and not report.server_errors
