"""The Open Inference Protocol (KServe v2) routes: the protocol's own client against a real
server, the error object for every malformed request, and hypothesis over the body."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_support import SCHEMA, expected, model_file, rows, uvicorn_app, write_model

from mlgen_runtime.inference_client import ClientError, InferenceClient
from mlgen_runtime.process import HOST, free_port
from mlgen_runtime.serving import Experiment, create_app, file_version
from mlgen_runtime.serving.v2_tensors import MATRIX_INPUT

NAME = "churn"
INFER = f"/v2/models/{NAME}/infer"


def valid_rows(count: int, seed: int = 3) -> list[dict[str, float]]:
    """``count`` random rows inside the schema's ranges."""
    rng = np.random.default_rng(seed)
    return [
        {
            f.name: float(rng.integers(f.minimum, f.maximum + 1))
            if f.kind == "categorical"
            else float(np.float32(rng.uniform(f.minimum, f.maximum)))
            for f in SCHEMA.features
        }
        for _ in range(count)
    ]


def by_feature(batch: list[dict[str, float]]) -> list[dict[str, Any]]:
    """One JSON tensor per feature: FP32 numeric, INT64 categorical codes."""
    tensors = []
    for feature in SCHEMA.features:
        values = [row[feature.name] for row in batch]
        categorical = feature.kind == "categorical"
        tensors.append(
            {
                "name": feature.name,
                "shape": [len(batch)],
                "datatype": "INT64" if categorical else "FP32",
                "data": [int(v) for v in values] if categorical else values,
            }
        )
    return tensors


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("v2") / "model.json")


@pytest.fixture(scope="module")
def client(model_path: Path) -> Iterator[TestClient]:
    app = create_app(schema=SCHEMA, model=model_file(model_path), title=NAME, max_batch_size=64)
    with TestClient(app) as test_client:
        yield test_client


def test_metadata_names_the_schemas_inputs(client: TestClient, model_path: Path) -> None:
    metadata = client.get(f"/v2/models/{NAME}").json()
    assert metadata["name"] == NAME and metadata["versions"] == [file_version(model_path)]
    assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == [
        (f.name, "INT64" if f.kind == "categorical" else "FP32", [-1]) for f in SCHEMA.features
    ]
    assert {o["name"] for o in metadata["outputs"]} == {"probabilities", "label"}
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data"]
    assert client.get(f"/v2/models/{NAME}/ready").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/other").json()["error"].startswith("unknown model 'other'")


def test_json_inference_echoes_the_id_and_selects_outputs(client: TestClient) -> None:
    batch = valid_rows(5)
    body = {"id": "req-7", "inputs": by_feature(batch), "outputs": [{"name": "probabilities"}]}
    answer = client.post(INFER, json=body).json()
    assert answer["id"] == "req-7" and answer["model_name"] == NAME
    (output,) = answer["outputs"]
    assert output["name"] == "probabilities" and output["shape"] == [5, 2]
    served = np.asarray(output["data"]).reshape(5, 2)[:, 1]
    np.testing.assert_allclose(served, expected(batch), atol=1e-6)
    matrix = SCHEMA.to_matrix(batch)
    as_matrix = {"name": MATRIX_INPUT, "shape": list(matrix.shape), "datatype": "FP32"}
    again = client.post(INFER, json={"inputs": [{**as_matrix, "data": matrix.tolist()}]}).json()
    assert again["outputs"][0]["data"] == output["data"]  # the Triton graph's input form
    assert [o["name"] for o in again["outputs"]] == ["probabilities", "label"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t[0].update(datatype="FP64"), "datatype FP64, the model takes FP32"),
        (lambda t: t[0].update(shape=[2, 2]), "shape [2, 2] must be [n] or [n, 1]"),
        (lambda t: t[0].update(name="zip_code"), "unknown input 'zip_code'"),
        (lambda t: t.pop(1), "missing input 'support_calls'"),
        (lambda t: t[0].update(data=[1.0]), "holds 2 values, data has 1"),
        (lambda t: t[0].update(data=["a", "b"]), "input 'tenure_months': data must be FP32"),
        (lambda t: t[0].update(data=[1.0, 500.0]), "input 'tenure_months', row 1"),
        (lambda t: t[2].update(shape=[1], data=[0]), "different batch sizes"),
        (lambda t: t[2].update(datatype="BYTES"), "datatype BYTES, the model takes INT64"),
        (lambda t: t.append(dict(t[0])), "'tenure_months' is given more than once"),
        (
            lambda t: t.append({**t[0], "name": MATRIX_INPUT, "shape": [2, 4]}),
            "unknown input 'tenure_months': beside one 'features' tensor",
        ),
    ],
)
def test_malformed_requests_get_the_error_object(
    client: TestClient, change: Any, message: str
) -> None:
    tensors = by_feature(rows(2))
    change(tensors)
    response = client.post(INFER, json={"inputs": tensors})
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]
    assert set(response.json()) == {"error"}


def test_requests_outside_the_protocol(client: TestClient) -> None:
    assert client.post(INFER, content=b"{").status_code == 400
    assert "inputs" in client.post(INFER, json={"id": "x"}).json()["error"]
    too_many = client.post(INFER, json={"inputs": by_feature(rows(65))})
    assert "1 to 64 rows" in too_many.json()["error"]
    assert client.post(f"/v2/models/{NAME}/versions/v0/infer", json={}).status_code == 404


def test_variants_answer_through_v2(model_path: Path, tmp_path: Path) -> None:
    treatment = write_model(tmp_path / "treatment.json", weights=[0.1, 0.1, 0.1, 0.1])
    experiment = Experiment("new-weights", treatment, treatment_share=0.5)
    app = create_app(schema=SCHEMA, model=model_file(model_path), title=NAME, experiment=experiment)
    with TestClient(app) as client:
        for user in [f"user-{i}" for i in range(12)]:
            body = {"inputs": by_feature(rows(1)), "parameters": {"user_id": user}}
            answer = client.post(INFER, json=body).json()
            assert answer["parameters"]["variant"] == experiment.variant_for(user)
        metrics = client.get("/metrics").text
    assert f'endpoint="{INFER}"' in metrics


request_inputs = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from([*SCHEMA.names, MATRIX_INPUT, "x"]),
            "shape": st.lists(st.integers(-2, 70), max_size=3),
            "datatype": st.sampled_from(["FP32", "INT64", "FP64", "BYTES", "BOOL", "X"]),
        },
        optional={
            "data": st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3),
                lambda children: st.lists(children, max_size=8),
                max_leaves=40,
            ),
            "parameters": st.fixed_dictionaries(
                {}, optional={"binary_data_size": st.integers(-1, 64) | st.text(max_size=2)}
            ),
        },
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    inputs=request_inputs,
    extra=st.dictionaries(st.sampled_from(["id", "parameters", "outputs"]), st.integers()),
    binary=st.binary(max_size=64),
)
def test_no_body_gets_a_server_error(
    client: TestClient, inputs: list[dict[str, Any]], extra: dict[str, Any], binary: bytes
) -> None:
    header = json.dumps({"inputs": inputs, **extra}).encode()
    response = client.post(
        INFER,
        content=header + binary,
        headers={"Inference-Header-Content-Length": str(len(header))} if binary else {},
    )
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert set(response.json()) == {"error"}


@pytest.fixture(scope="module")
def server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service in a real uvicorn process on loopback; yields ``host:port``."""
    folder = tmp_path_factory.mktemp("v2-app")
    with uvicorn_app(folder, "serving_support", model_path, NAME) as address:
        yield address


@pytest.mark.parametrize("binary_data", [True, False])
@pytest.mark.parametrize("count", [1, 64])
def test_tritonclient_against_the_real_server(server: str, count: int, binary_data: bool) -> None:
    client = triton.InferenceServerClient(server)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(NAME)
    metadata = client.get_model_metadata(NAME)
    assert [tensor["name"] for tensor in metadata["inputs"]] == list(SCHEMA.names)
    batch = valid_rows(count)
    matrix = SCHEMA.to_matrix(batch)
    inputs = []
    for column, spec in enumerate(metadata["inputs"]):
        tensor = triton.InferInput(spec["name"], [count], spec["datatype"])
        values = matrix[:, column].astype(np.int64 if spec["datatype"] == "INT64" else np.float32)
        tensor.set_data_from_numpy(values, binary_data=binary_data)
        inputs.append(tensor)
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary_data)
        for name in ("probabilities", "label")
    ]
    result = client.infer(NAME, inputs, outputs=outputs, request_id="r1")
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (count, 2)
    assert float(np.max(np.abs(probabilities[:, 1] - expected(batch)))) < 1e-5
    assert result.as_numpy("label").reshape(-1).tolist() == [
        int(p >= 0.5) for p in probabilities[:, 1]
    ]
    assert result.get_response()["id"] == "r1"
    default = client.infer(NAME, inputs)  # no outputs named: all of them, as binary
    np.testing.assert_array_equal(default.as_numpy("probabilities"), probabilities)


def test_the_runtime_client_against_the_real_server(server: str) -> None:
    client = InferenceClient(f"http://{server}", NAME, max_batch_size=40)
    assert client.live() and client.wait_ready(timeout=10) >= 0
    batch = valid_rows(100)  # above max_batch_size: sent as three requests
    result = client.infer_rows(batch, SCHEMA, request_id="abc")
    assert float(np.max(np.abs(result.probabilities - expected(batch)))) < 1e-5
    assert result.labels is not None and result.labels.tolist() == [
        int(p >= 0.5) for p in result.probabilities
    ]
    assert result.request_id == "abc" and result.parameters["variant"] == "control"
    with pytest.raises(ClientError, match="input 'tenure_months', row 0") as refused:
        bad = SCHEMA.to_matrix(batch[:1])
        bad[0, 0] = 500.0  # the server's check, not the schema's (infer_rows checks first)
        client.infer_matrix(bad, names=SCHEMA.names)
    assert refused.value.status == 400
    with pytest.raises(ClientError, match="no metadata"):
        InferenceClient(f"http://{server}", "other").infer_rows(batch, SCHEMA)


def test_the_runtime_client_sends_a_matrix_to_a_one_input_model(server: str) -> None:
    """Triton's and KServe's ONNX graph takes one ``features [n, width]`` tensor: the client
    sends that form when the metadata says so (this server accepts both forms)."""
    client = InferenceClient(f"http://{server}", NAME)
    client._metadata = {
        "inputs": [{"name": MATRIX_INPUT, "datatype": "FP32", "shape": [-1, SCHEMA.width]}]
    }
    batch = valid_rows(8)
    assert client._inputs(SCHEMA.to_matrix(batch), None)[0]["shape"] == [8, SCHEMA.width]
    result = client.infer_matrix(SCHEMA.to_matrix(batch))
    assert float(np.max(np.abs(result.probabilities - expected(batch)))) < 1e-5


def test_the_runtime_client_command_line(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    from mlgen_runtime.inference_client import main

    common = ["--url", f"http://{server}", "--model", NAME, "--schema", "serving_support:SCHEMA"]
    batch = valid_rows(2)
    assert main([*common, *(json.dumps(row) for row in batch)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["row"] for line in lines] == batch
    served = [line["probability"] for line in lines]
    assert float(np.max(np.abs(np.asarray(served) - expected(batch)))) < 1e-5
    assert main([*common, json.dumps({**batch[0], "tenure_months": 500.0})]) == 1
    assert "tenure_months" in capsys.readouterr().err


def test_the_runtime_client_says_when_nothing_answers() -> None:
    client = InferenceClient(f"http://{HOST}:{free_port()}", NAME, timeout=2)
    assert not client.live() and not client.ready()
    with pytest.raises(ClientError, match="no answer from") as failure:
        client.metadata()
    assert failure.value.status is None
