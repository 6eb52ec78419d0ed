"""Slow tier: the Open Inference Protocol's own client against every backend's real server.

``tritonclient.http.InferenceServerClient`` (Triton's client, which nobody here wrote)
talks to the server each backend that speaks v2 natively really runs, started by the
generated repository's own code in its shared environment:

* ``fastapi``: the generated service under uvicorn (``serving.smoke.running_server``);
* ``rayserve``: ``serve run`` of the repository's Serve config, the runtime's service as
  the ingress (``serving.smoke.running_server``);
* ``kserve``: KServe's ``ModelServer`` from PyPI (``serving.smoke.running_server``);
* ``triton``: the tritonserver binary of the ``nvidia-pytriton`` wheel
  (:mod:`mlgen_runtime.backends.triton_local`). That build has no ``onnxruntime``
  backend, so it serves the repository's LOCAL-ONLY python-backend twin, which runs the
  same ``model.onnx`` with ONNX Runtime; the HTTP front end, protocol and batching are
  tritonserver's own.

Each server is asked ``is_server_live``, ``is_server_ready``, ``is_model_ready`` and
``get_model_metadata``, then ``infer`` with one row and with a batch of 64 (JSON and
binary tensors); the served probabilities must equal the in-process prediction of the
same exported model (``modeling.load_exported``) within 1e-5, and the trained model's
within the export tolerance. The v2 request each repository's ``docs/serving.md`` shows
is the same for every backend that speaks v2 (fast tier), and it works on each server.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlgen.environments import python_in, repo_process_environment
from tests.conftest import BuiltRepos
from tests.rendering import render, slow_tier_backends

BATCH = 64
TOLERANCE = 1e-5
READY_TIMEOUT_S = 600.0  # training and a cold import of kserve or tritonserver on 2 cores

# How each backend's repository serves its exported model; ``serve(url, grpc)`` hands the
# base URL (and the gRPC address, if any) to the test and returns when the test is done.
SERVERS = {
    "fastapi": """
from {package}.serving.smoke import running_server
with running_server(artifact) as url:
    serve(url, None)
""",
    "kserve": """
from {package}.serving.smoke import running_server
with running_server(artifact) as server:
    serve(server.base_url, server.grpc_address)
""",
    "rayserve": """
from {package}.serving.smoke import running_server
with running_server(artifact) as server:
    serve(server.base_url, None)
""",
    "triton": """
from mlgen_runtime.backends import triton_local
from {package}.serving import model_repository
local = model_repository.build_local_repository(artifact, out / "triton-local")
with triton_local.running(local) as server:
    serve("http://" + server.http_url, triton_local.HOST + ":" + str(server.grpc_port))
""",
}

# Runs in the repository's environment: train, predict in-process, serve until stdin closes.
DRIVER = """
import importlib, json, sys
from pathlib import Path
import numpy as np
package, out = sys.argv[1], Path(sys.argv[2])
features = importlib.import_module(package + ".features")
modeling = importlib.import_module(package + ".modeling")
train = importlib.import_module(package + ".train")
model, record = train.fit_and_export(out, 2000)
artifact = out / record["artifact"]
rng = np.random.default_rng(17)
rows = [
    {{
        f.name: float(rng.integers(f.minimum, f.maximum + 1))
        if f.kind == "categorical"
        else float(np.float32(rng.uniform(f.minimum, f.maximum)))
        for f in features.SCHEMA.features
    }}
    for _ in range({batch})
]
matrix = features.to_matrix(rows)
facts = {{
    "model_name": importlib.import_module(package).MODEL_NAME,
    "names": list(features.SCHEMA.names),
    "matrix": matrix.tolist(),
    "exported": np.asarray(modeling.load_exported(artifact)(matrix), dtype=float).tolist(),
    "trained": np.asarray(modeling.predict_proba(model, matrix), dtype=float).tolist(),
    "export_tolerance": train.EXPORT_TOLERANCE,
}}

def serve(url, grpc):
    (out / "server.json").write_text(json.dumps({{**facts, "url": url, "grpc": grpc}}))
    sys.stdin.read()

{serve}
"""


def v2_backends() -> list[str]:
    """The slow tier's backends whose server speaks v2 natively (one per environment)."""
    return [backend for backend in slow_tier_backends() if backend in SERVERS]


DOCUMENTED = re.compile(r"curl -s \S+/v2/models/\S+/infer [^\n]*-d '(\{.*?\})'", re.DOTALL)
# TorchServe's v2 envelope and TF Serving are documented as not speaking v2.
DOCUMENTED_V2 = ("fastapi", "rayserve", "triton", "kserve")
NOT_V2 = {"torchserve": "not used, and why", "tfserving": "No Open Inference Protocol"}


def documented_request(repo: Path) -> str:
    """The body of the v2 ``curl`` request in a repository's ``docs/serving.md``."""
    found = DOCUMENTED.findall((repo / "docs" / "serving.md").read_text(encoding="utf-8"))
    assert len(found) == 1, found
    return str(found[0])


def test_the_docs_show_one_v2_request_for_every_backend(
    template_root: Path, tmp_path: Path
) -> None:
    from mlgen.plugins import get_registry

    installed = set(get_registry().backend_names())
    bodies = {
        backend: documented_request(
            render(template_root, tmp_path / backend, serving_backend=backend)
        )
        for backend in DOCUMENTED_V2
        if backend in installed
    }
    assert len(set(bodies.values())) == 1, bodies
    for backend, says in NOT_V2.items():
        docs = render(template_root, tmp_path / backend, serving_backend=backend) / "docs"
        assert says in (docs / "serving.md").read_text(encoding="utf-8"), backend


@dataclass(frozen=True)
class Served:
    backend: str
    repo: Path
    url: str
    grpc: str | None
    model_name: str
    names: list[str]
    matrix: np.ndarray
    exported: np.ndarray
    trained: np.ndarray
    export_tolerance: float

    @property
    def host_port(self) -> str:
        return self.url.removeprefix("http://")


@pytest.fixture(scope="module", params=v2_backends())
def served(
    request: pytest.FixtureRequest,
    built_repos: BuiltRepos,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """The backend's real server on loopback, its model trained by the repository's code."""
    with _driven(built_repos, request.param, SERVERS[request.param], tmp_path_factory) as got:
        yield got


@contextmanager
def _driven(
    built_repos: BuiltRepos, backend: str, serve: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """Run :data:`DRIVER` with ``serve`` in ``backend``'s repository until the block ends."""
    repo, environment = built_repos.get(backend)
    package = next(path.name for path in (repo / "src").iterdir() if path.is_dir())
    out = tmp_path_factory.mktemp(f"v2-{backend}")
    script = DRIVER.format(batch=BATCH, serve=serve.format(package=package))
    with driven(repo, environment, [script, package, str(out)], out) as facts:
        yield Served(
            backend=backend,
            repo=repo,
            url=facts["url"],
            grpc=facts["grpc"],
            model_name=facts["model_name"],
            names=facts["names"],
            matrix=np.asarray(facts["matrix"]),
            exported=np.asarray(facts["exported"]),
            trained=np.asarray(facts["trained"]),
            export_tolerance=facts["export_tolerance"],
        )


@contextmanager
def driven(
    repo: Path,
    environment: Path,
    arguments: list[str],
    out: Path,
    extra_env: dict[str, str] | None = None,
    timeout: float = READY_TIMEOUT_S,
) -> Iterator[dict[str, Any]]:
    """Run ``python -c SCRIPT ARGS...`` (``arguments``) in the repository's environment
    until the block ends; yield what it writes to ``out/server.json`` once its server
    runs. Closing its stdin ends it (its server's block: the server stops)."""
    log = out.parent / f"{out.name}-driver.log"
    with log.open("wb") as output:
        driver = subprocess.Popen(
            [str(python_in(environment)), "-c", *arguments],
            cwd=repo,
            env=repo_process_environment(repo, environment, extra_env),
            stdin=subprocess.PIPE,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            yield _wait_for(out / "server.json", driver, log, timeout)
        finally:
            assert driver.stdin is not None
            driver.stdin.close()
            try:
                driver.wait(timeout=120)
            except subprocess.TimeoutExpired:
                driver.kill()
                driver.wait(timeout=30)


def _wait_for(
    path: Path, driver: subprocess.Popen[bytes], log: Path, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if driver.poll() is not None:
            pytest.fail(f"the server did not start:\n{log.read_text(errors='replace')[-4000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no server after {timeout:g} s:\n{log.read_text()[-4000:]}")
        time.sleep(0.5)
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def post_json(url: str, body: Any) -> tuple[int, Any]:
    """POST ``body`` as JSON (no proxy); the status and the JSON answer, errors included."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read())


@pytest.mark.slow
def test_health_and_metadata(served: Served) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(served.host_port)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(served.model_name)
    assert not client.is_model_ready("no-such-model")
    metadata = client.get_model_metadata(served.model_name)
    assert metadata["name"] == served.model_name
    inputs = {tensor["name"]: tensor for tensor in metadata["inputs"]}
    if "features" in inputs:  # Triton, KServe: the ONNX graph's one matrix input
        assert inputs["features"]["datatype"] == "FP32"
        assert inputs["features"]["shape"] == [-1, len(served.names)]
    else:  # the runtime's service: one tensor per feature, in the schema's order
        assert list(inputs) == served.names
    assert "probabilities" in {tensor["name"] for tensor in metadata["outputs"]}


@pytest.mark.slow
@pytest.mark.parametrize("binary_data", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("count", [1, BATCH])
def test_infer_equals_the_in_process_prediction(
    served: Served, count: int, binary_data: bool
) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(served.host_port)
    metadata = client.get_model_metadata(served.model_name)
    matrix = served.matrix[:count]
    inputs = []
    for spec in metadata["inputs"]:
        dtype = np.int64 if spec["datatype"] == "INT64" else np.float32
        if len(spec["shape"]) == 2:
            values = matrix.astype(dtype)
        else:
            values = matrix[:, served.names.index(spec["name"])].astype(dtype)
        tensor = triton.InferInput(spec["name"], list(values.shape), spec["datatype"])
        tensor.set_data_from_numpy(values, binary_data=binary_data)
        inputs.append(tensor)
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary_data)
        for name in ("probabilities", "label")
    ]
    # tritonclient sends JSON without a Content-Type; KServe 0.21 reads such a body as
    # binary tensor data (and refuses it: no Inference-Header-Content-Length), so say it.
    headers = None if binary_data else {"Content-Type": "application/json"}
    result = client.infer(
        served.model_name, inputs, outputs=outputs, request_id=f"r{count}", headers=headers
    )
    probabilities = result.as_numpy("probabilities")
    assert probabilities is not None and probabilities.shape == (count, 2)
    served_positive = probabilities[:, 1].astype(np.float64)
    exported_diff = float(np.max(np.abs(served_positive - served.exported[:count])))
    assert exported_diff < TOLERANCE, (served.backend, exported_diff)
    trained_diff = float(np.max(np.abs(served_positive - served.trained[:count])))
    assert trained_diff < served.export_tolerance, (served.backend, trained_diff)
    labels = result.as_numpy("label")
    assert labels is not None
    assert labels.reshape(-1).tolist() == [int(p >= 0.5) for p in served_positive]
    assert result.get_response()["id"] == f"r{count}"


@pytest.mark.slow
def test_the_documented_request_works(served: Served) -> None:
    body = documented_request(served.repo)
    request = urllib.request.Request(
        f"{served.url}/v2/models/{served.model_name}/infer",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        answer = json.loads(response.read())
    (output,) = answer["outputs"]
    assert output["name"] == "probabilities" and output["shape"] == [1, 2], answer
    assert sum(output["data"]) == pytest.approx(1.0, abs=1e-5)


MALFORMED = {
    "wrong-datatype": lambda tensor: {"inputs": [{**tensor, "datatype": "FP64"}]},
    "wrong-shape": lambda tensor: {
        "inputs": [{**tensor, "shape": [1, 5], "data": tensor["data"][:5]}]
    },
    "unknown-input": lambda tensor: {"inputs": [tensor, {**tensor, "name": "zip_code"}]},
    "missing-input": lambda tensor: {"inputs": []},
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_request_is_a_400_naming_the_input(served: Served, case: str) -> None:
    (tensor,) = json.loads(documented_request(served.repo))["inputs"]
    body = MALFORMED[case](tensor)
    status, answer = post_json(f"{served.url}/v2/models/{served.model_name}/infer", body)
    assert status == 400, answer
    assert set(answer) == {"error"}, answer
    # A missing input: the runtime's service names the first missing feature tensor
    # (its metadata's inputs), Triton and KServe the one matrix tensor.
    named = {"unknown-input": ["zip_code"], "missing-input": ["features", *served.names]}
    assert any(repr(name) in answer["error"] for name in named.get(case, ["features"])), answer


@pytest.mark.slow
def test_no_v2_body_gets_a_server_error(served: Served) -> None:
    """Hypothesis over the v2 JSON body against the real server: a 4xx or a 200, never 5xx.

    The bodies are standard JSON with a string ``id``, as the protocol defines it (KServe
    0.21 answers 500 for ``Infinity``/``NaN`` numbers, "Out of range float values are not
    JSON compliant"; the runtime's service 400). Not run against tritonserver: its HTTP
    front end (the pytriton 0.5.7 build) answers 500 for a whole class of malformed
    tensors, found here: ``data`` whose length does not match ``shape`` ("Unable to parse
    'data': Shape does not match true shape of 'data' field"), ``data`` that is not an
    array ("... attempt to access JSON non-array as array"), a non-string ``id`` and a
    parameter name with a NUL character. That is NVIDIA's code, not this project's.
    """
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    if served.backend == "triton":
        pytest.skip("tritonserver answers 500 for malformed JSON tensors (see the docstring)")

    keys = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=8)
    numbers = st.integers(-(2**63), 2**63) | st.floats(allow_nan=False, allow_infinity=False)
    data = st.recursive(
        st.none() | st.booleans() | numbers | st.text(max_size=3),
        lambda children: st.lists(children, max_size=8),
        max_leaves=40,
    )
    tensors = st.fixed_dictionaries(
        {
            "name": st.sampled_from(["features", *served.names, "x"]),
            "shape": st.lists(st.integers(-1, 70), max_size=3),
            "datatype": st.sampled_from(["FP32", "INT64", "FP64", "BYTES", "BOOL", "X"]),
        },
        optional={
            "data": data,
            "parameters": st.dictionaries(keys, st.integers() | st.text(max_size=3)),
        },
    )
    bodies = st.fixed_dictionaries(
        {"inputs": st.lists(tensors, max_size=4)},
        optional={
            "id": st.text(max_size=8),
            "outputs": st.lists(st.fixed_dictionaries({"name": st.text(max_size=14)}), max_size=3),
            "parameters": st.dictionaries(keys, st.integers() | st.text(max_size=3)),
        },
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"{served.url}/v2/models/{served.model_name}/infer"

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies)
    def post(body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            url,
            data=json.dumps(body, allow_nan=False).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with opener.open(request, timeout=10) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read()
        assert status < 500, (status, text[:500], body)

    post()


# In a process of its own: tritonclient.grpc and kserve (imported by runtime tests in the
# same worker) register the same protobuf names, which protobuf refuses.
GRPC_CLIENT = """
import json, sys
import numpy as np
import tritonclient.grpc as triton_grpc
address, model, matrix = sys.argv[1], sys.argv[2], np.asarray(json.loads(sys.argv[3]), np.float32)
client = triton_grpc.InferenceServerClient(address)
tensor = triton_grpc.InferInput("features", list(matrix.shape), "FP32")
tensor.set_data_from_numpy(matrix)
result = client.infer(model, [tensor], request_id="g1")
print(json.dumps({
    "live": client.is_server_live(),
    "ready": client.is_model_ready(model),
    "id": result.get_response().id,
    "probabilities": result.as_numpy("probabilities").tolist(),
}))
"""


@pytest.mark.slow
def test_grpc_infer_equals_the_in_process_prediction(served: Served) -> None:
    """``tritonclient.grpc`` where the server speaks v2 over gRPC too (Triton, KServe)."""
    if served.grpc is None:
        pytest.skip(f"{served.backend} serves v2 over REST only")
    matrix = json.dumps(served.matrix.tolist())
    command = [sys.executable, "-c", GRPC_CLIENT, served.grpc, served.model_name, matrix]
    ran = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-3000:]
    answer = json.loads(ran.stdout)
    assert answer["live"] and answer["ready"] and answer["id"] == "g1"
    probabilities = np.asarray(answer["probabilities"])
    assert probabilities.shape == (BATCH, 2)
    assert float(np.max(np.abs(probabilities[:, 1] - served.exported))) < TOLERANCE


# TorchServe with its KServe v2 envelope on (docs/serving.md of its repositories says why
# the backend does not use it): the repository's archive, its local config plus the two
# settings.
TORCHSERVE_ENVELOPE = """
from mlgen_runtime.backends import torchserve
from {package}.serving import archive
mar = archive.build_archive(artifact, out / "model-store")
properties = torchserve.read_properties(Path("serving/config.local.properties"))
properties.update(
    service_envelope="kservev2",
    ts_open_inference_protocol="true",
    metrics_config=str(Path("serving/metrics.yaml").resolve()),
)
config = out / "envelope.properties"
torchserve.write_properties(config, properties)
with torchserve.running_server(mar, config) as server:
    serve(server.url("inference"), None)
"""


@pytest.mark.slow
def test_torchserve_v2_envelope_lacks_what_the_docs_say(
    built_repos: BuiltRepos, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """What the TorchServe repositories' docs/serving.md says of TorchServe's v2 mode: the
    health routes answer, the model's metadata and ready routes do not, and the envelope
    breaks the JSON-row ``/predictions`` API. A TorchServe that fills the gaps fails this
    test: then the backend can move to v2 and the docs change."""
    if "torchserve" not in slow_tier_backends():
        pytest.skip("the torchserve backend is not installed")
    with _driven(built_repos, "torchserve", TORCHSERVE_ENVELOPE, tmp_path_factory) as got:
        name = got.model_name
        assert _status(f"{got.url}/v2/health/live") == 200
        assert _status(f"{got.url}/v2/health/ready") == 200
        assert _status(f"{got.url}/v2/models/{name}") == 404
        assert _status(f"{got.url}/v2/models/{name}/ready") == 404
        row = dict(zip(got.names, got.matrix[0].tolist(), strict=True))
        assert _status(f"{got.url}/predictions/{name}", row) >= 400


def _status(url: str, payload: Any = None) -> int:
    request = urllib.request.Request(
        url,
        data=None if payload is None else json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
