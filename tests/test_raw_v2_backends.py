"""Slow tier: Triton and the KServe model server serve a model that takes raw rows.

A repository on the palmerpenguins table (the schema of :mod:`tests.test_raw_rows`: the
string categories ``island`` and ``sex``, nullable numbers) is generated for each backend
from the copier answers ``mlgen new --data`` passes, trained by its own code, and its
export (one raw input per feature, encoding and imputation inside the ONNX graph) served
by the backend's real server, started by the repository's own code in its shared
environment:

* ``triton``: the tritonserver of the ``nvidia-pytriton`` wheel, serving the repository's
  LOCAL-ONLY python-backend twin built from its generated ``config.pbtxt`` (one
  ``TYPE_STRING`` / ``TYPE_FP32`` input per feature), which the repository's own check
  validates against the exported graph first;
* ``kserve``: KServe's ``ModelServer`` (``serving.smoke.running_server``).

``tritonclient.http`` sends the string categories as ``BYTES`` (JSON and binary tensors;
``""`` is a null string, NaN a null number) and the served probabilities equal the
in-process model's (|diff| < 1e-5), for the raw rows of :mod:`tests.test_raw_rows` (an
unknown island, nulls) and a batch of 64 rows of the table.

The local tritonserver is also checked with a schema of nullable numbers only (one
``FP32`` input per feature, NaN a null): its twin feeds each input to the graph by name.
Its python-backend stub reads string tensors only with numpy 1: the models run in the
side environment the Triton plugin's ``mlgen_prepare_environment`` hook builds
(``triton_local.prepare_model_environment``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import palmerpenguins
import pytest

from mlgen.environments import shared_environment
from tests.rendering import slow_tier_backends
from tests.test_raw_rows import PACKAGE, ROWS, SCHEMA, render_penguins
from tests.test_v2_backends import driven, post_json

TOLERANCE = 1e-5
BATCH = 64
READY_TIMEOUT_S = 900.0
STRINGS = {"island", "sex"}

SERVERS = {
    "triton": """
from mlgen_runtime.backends import triton_local
from {package}.serving import model_repository
checked = model_repository.validate(model_repository.default_config_path(), artifact)
facts["problems"] = checked.problems
local = model_repository.build_local_repository(artifact, out / "triton-local")
with triton_local.running(local) as server:
    serve("http://" + server.http_url)
""",
    "kserve": """
from {package}.serving.smoke import running_server
facts["problems"] = []
with running_server(artifact) as server:
    serve(server.base_url)
""",
}

# Runs in the repository's environment: train on the CSV, predict in-process, serve until
# stdin closes.
DRIVER = """
import json, sys
from pathlib import Path
from {package} import features, modeling, train
out, rows = Path(sys.argv[1]), json.loads(sys.argv[2])
model, record = train.fit_and_export(out, 200, source="synthetic")
artifact = out / record["artifact"]
facts = {{
    "in_process": modeling.predict_proba(model, features.to_matrix(rows)).tolist(),
    "exported": modeling.load_exported(artifact)(rows).tolist(),
}}

def serve(url):
    (out / "server.json").write_text(json.dumps({{**facts, "url": url}}))
    sys.stdin.read()

{serve}
"""


def table_rows(count: int) -> list[dict[str, Any]]:
    """The first ``count`` penguins as raw rows (``None`` for a missing value)."""
    frame = palmerpenguins.load_penguins()
    names = [feature["name"] for feature in SCHEMA["features"]]
    rows = frame[names].head(count).to_dict(orient="records")
    return [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        for row in rows
    ]


@pytest.fixture(
    scope="module", params=[b for b in ("triton", "kserve") if b in slow_tier_backends()]
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, template_root: Path
) -> Iterator[dict[str, Any]]:
    """The backend's real server on loopback, serving the penguins model; the driver's facts."""
    backend = request.param
    root = tmp_path_factory.mktemp(f"raw-{backend}")
    repo = render_penguins(template_root, root, backend)
    environment = shared_environment(repo)
    rows = ROWS + table_rows(BATCH - len(ROWS))
    script = DRIVER.format(package=PACKAGE, serve=SERVERS[backend].format(package=PACKAGE))
    arguments = [script, str(root / "out"), json.dumps(rows)]
    telemetry = {"MLFLOW_DISABLE_TELEMETRY": "true"}
    with driven(repo, environment, arguments, root / "out", telemetry, READY_TIMEOUT_S) as facts:
        yield {**facts, "backend": backend, "rows": rows}


@pytest.mark.slow
def test_the_config_matches_the_exported_graph(served: dict[str, Any]) -> None:
    assert served["problems"] == []
    exported, in_process = np.asarray(served["exported"]), np.asarray(served["in_process"])
    assert float(np.max(np.abs(exported - in_process))) < TOLERANCE


@pytest.mark.slow
def test_metadata_names_one_input_per_feature(served: dict[str, Any]) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(served["url"].removeprefix("http://"))
    assert client.is_server_live() and client.is_model_ready(PACKAGE)
    metadata = client.get_model_metadata(PACKAGE)
    names = [feature["name"] for feature in SCHEMA["features"]]
    assert [spec["name"] for spec in metadata["inputs"]] == names
    assert [spec["datatype"] for spec in metadata["inputs"]] == [
        "BYTES" if name in STRINGS else "FP32" for name in names
    ]


@pytest.mark.slow
@pytest.mark.parametrize("binary_data", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("count", [1, len(ROWS), BATCH])
def test_bytes_inputs_equal_the_in_process_prediction(
    served: dict[str, Any], count: int, binary_data: bool
) -> None:
    result = infer(served, served["rows"][:count], binary_data)
    probabilities = result.as_numpy("probabilities")
    assert probabilities is not None and probabilities.shape == (count, 2)
    expected = np.asarray(served["in_process"][:count])
    diff = float(np.max(np.abs(probabilities[:, 1].astype(np.float64) - expected)))
    assert diff < TOLERANCE, (served["backend"], diff)


def infer(
    served: dict[str, Any],
    rows: list[dict[str, Any]],
    binary_data: bool,
    schema: dict[str, Any] = SCHEMA,
) -> Any:
    """``tritonclient.http``'s infer of raw ``rows``: one BYTES or FP32 tensor per feature."""
    import tritonclient.http as triton

    client = triton.InferenceServerClient(served["url"].removeprefix("http://"))
    count = len(rows)
    inputs = []
    for feature in schema["features"]:
        name = feature["name"]
        values = [row[name] for row in rows]
        if name in STRINGS:  # "" is a null
            array = np.array(["" if v is None else v for v in values], dtype=np.object_)
        else:  # NaN is a null
            array = np.array([np.nan if v is None else v for v in values], dtype=np.float32)
        tensor = triton.InferInput(name, [count, 1], "BYTES" if name in STRINGS else "FP32")
        tensor.set_data_from_numpy(array.reshape(count, 1), binary_data=binary_data)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput("probabilities", binary_data=binary_data)]
    # tritonclient sends JSON without a Content-Type, which KServe reads as binary data
    headers = None if binary_data else {"Content-Type": "application/json"}
    return client.infer(PACKAGE, inputs, outputs=outputs, request_id="raw", headers=headers)


@pytest.mark.slow
def test_kserve_refuses_a_level_the_schema_rejects(served: dict[str, Any]) -> None:
    """``sex`` has ``unknown: reject``: KServe answers 400 naming the input and the levels
    (tritonserver runs the graph as it is, which has no refusal: the level becomes NaN)."""
    if served["backend"] != "kserve":
        pytest.skip("tritonserver does not check values beyond the config's datatypes")
    row = ROWS[1]
    body = {
        "inputs": [
            {
                "name": feature["name"],
                "datatype": "BYTES" if feature["name"] in STRINGS else "FP32",
                "shape": [1],
                "data": ["unknown" if feature["name"] == "sex" else row[feature["name"]]],
            }
            for feature in SCHEMA["features"]
        ]
    }
    status, answer = post_json(f"{served['url']}/v2/models/{PACKAGE}/infer", body)
    assert status == 400, answer
    assert "'sex'" in answer["error"] and "['female', 'male']" in answer["error"], answer


NUMBERS: dict[str, Any] = {
    "features": [f for f in SCHEMA["features"] if f["type"] == "number"],
    "example": {k: v for k, v in SCHEMA["example"].items() if k not in STRINGS},
}
"""The penguins schema without its string categories: nullable numbers only."""


@pytest.fixture(scope="module")
def triton_numbers(
    tmp_path_factory: pytest.TempPathFactory, template_root: Path
) -> Iterator[dict[str, Any]]:
    """The local tritonserver serving the penguins model of nullable numbers only."""
    if "triton" not in slow_tier_backends():
        pytest.skip("the triton backend is not installed")
    root = tmp_path_factory.mktemp("raw-triton-numbers")
    repo = render_penguins(template_root, root, "triton", NUMBERS)
    environment = shared_environment(repo)
    names = [feature["name"] for feature in NUMBERS["features"]]
    rows = [{name: row[name] for name in names} for row in ROWS + table_rows(BATCH - len(ROWS))]
    script = DRIVER.format(package=PACKAGE, serve=SERVERS["triton"].format(package=PACKAGE))
    arguments = [script, str(root / "out"), json.dumps(rows)]
    telemetry = {"MLFLOW_DISABLE_TELEMETRY": "true"}
    with driven(repo, environment, arguments, root / "out", telemetry, READY_TIMEOUT_S) as facts:
        yield {**facts, "backend": "triton", "rows": rows}


@pytest.mark.slow
@pytest.mark.parametrize("binary_data", [False, True], ids=["json", "binary"])
def test_triton_serves_nullable_numbers_by_feature(
    triton_numbers: dict[str, Any], binary_data: bool
) -> None:
    import tritonclient.http as triton

    assert triton_numbers["problems"] == []
    client = triton.InferenceServerClient(triton_numbers["url"].removeprefix("http://"))
    metadata = client.get_model_metadata(PACKAGE)
    names = [feature["name"] for feature in NUMBERS["features"]]
    assert [(spec["name"], spec["datatype"]) for spec in metadata["inputs"]] == [
        (name, "FP32") for name in names
    ]
    rows = triton_numbers["rows"]
    result = infer(triton_numbers, rows, binary_data, NUMBERS)
    probabilities = result.as_numpy("probabilities")
    assert probabilities is not None and probabilities.shape == (len(rows), 2)
    expected = np.asarray(triton_numbers["in_process"])
    diff = float(np.max(np.abs(probabilities[:, 1].astype(np.float64) - expected)))
    assert diff < TOLERANCE, diff
