"""Serving: the generated FastAPI service under wrk, against hello-world FastAPI and BentoML.

A repository is rendered from the checkout's template (fastapi backend), its model
trained in the repository's own environment (``mlgen.environments.shared_environment``)
and served with the production command of the backend (``uvicorn <app> --host --port``:
one worker, uvicorn's defaults) on loopback, pinned to CPU 0 with ``taskset`` when it is
available. The service is ``mlgen_runtime.serving``'s app on the repository's schema and
model. Next to it run:

* the same service with online drift off (``ONLINE_DRIFT=0``) and with the runtime's fast
  path off (``create_app(fast_path=False)``: every request through FastAPI's route);
* a hello-world FastAPI app (``GET /`` answering a constant JSON object), same uvicorn;
* BentoML's ``bentoml serve`` of the same ONNX model file with default settings (a
  ``@bentoml.service`` class with one ``@bentoml.api`` taking the feature row), in its own
  cached environment (``benchmarks/requirements-bentoml.txt``; ``--no-bentoml`` skips it).

``wrk`` (one thread, pinned to CPU 1) loads one server at a time; the scenarios
alternate, round after round, so that the load of a shared machine falls on all of them
alike, and the medians of the rounds are compared:

* throughput and p95 latency of single-row ``POST /predict`` vs hello-world, at 1 and 8
  connections (targets: >= 0.8x the throughput, <= 1.3x the p95);
* throughput vs BentoML at 1 and 8 connections (target >= 5x);
* p95 latency of single rows at 8 connections vs the repository's latency objective
  (``latency_slo_p95_ms``, 100 ms by default; target: under 10 % of it);
* the server's CPU time per single-row request vs hello-world's, at 8 connections
  (target <= 1.25x: the throughput target as CPU time, read from /proc around each run;
  other load on the machine lowers both rates but hardly moves this);
* throughput with the fast path vs through the FastAPI route alone, 8 connections (what
  the fast path pays; reported, target >= 1x);
* rows per second of 64-row batches vs single rows, at 8 connections (target >= 10x);
* p50 latency (and server CPU time) of single rows at 1 connection with online drift
  on vs off (target: at most 5 % more);
* the Open Inference Protocol route (``POST /v2/models/<name>/infer``, one JSON tensor
  per feature) vs ``POST /predict``, for one row and for 64-row batches, 8 connections
  (reported; target >= 0.5x: the runtime's fast path answers both, the v2 body has one
  tensor per feature to read).

Every wrk run must end without socket errors or non-2xx answers. Needs ``wrk``
(``bash scripts/system-tools`` installs it). Run: ``python benchmarks/serving.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    Measurement,
    base_parser,
    benchmark_environment,
    comparison,
    environment_info,
    scratch_dir,
    write_result,
)
from _fixtures import plain_template

NAME = "serving"
ANSWERS = {"model_name": "bench-serving", "serving_backend": "fastapi"}
HOST = "127.0.0.1"
SERVER_CPU, CLIENT_CPU = "0", "1"
READY_TIMEOUT_S = 120.0
BATCH_ROWS = 64
TARGETS = {
    "throughput": 0.8,
    "p95": 1.3,
    "bentoml": 5.0,
    "slo_share": 0.1,
    "fast_path": 1.0,
    "batch": 10.0,
    "drift_overhead": 1.05,
    "v2": 0.5,
}
HELLO_APP = """\
from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def hello() -> dict[str, str]:
    return {"message": "hello world"}
"""
# The service through FastAPI's route alone (the runtime's fast path off).
ROUTE_ONLY_APP = """\
from PACKAGE.serving.app import create_app

app = create_app(fast_path=False)
"""
# BentoML's idiomatic service for the same ONNX model: one API taking the feature row.
BENTO_SERVICE = """\
import json
import os

import bentoml
import numpy as np
import onnxruntime as ort

FEATURES = json.loads(os.environ["BENCH_FEATURES"])


@bentoml.service
class Model:
    def __init__(self) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(
            os.environ["BENCH_MODEL_PATH"], options, providers=["CPUExecutionProvider"]
        )

    @bentoml.api
    def predict(self, row: dict[str, float]) -> dict[str, float]:
        features = np.array([[row[name] for name in FEATURES]], dtype=np.float32)
        probability = float(self.session.run(["probabilities"], {"features": features})[0][0, 1])
        return {"probability": probability, "label": int(probability >= 0.5)}
"""
# What uvicorn's "auto" loop and http settings pick in the repository's environment.
UVICORN_IMPLEMENTATIONS = (
    "import json; from importlib.util import find_spec as f; print(json.dumps({"
    "'loop': 'uvloop' if f('uvloop') else 'asyncio', "
    "'http': 'httptools' if f('httptools') else 'h11'}))"
)
# Rows of the repository's synthetic data set, as request objects.
EXAMPLE_ROWS = (
    "import json; from PACKAGE.data import make_dataset; from PACKAGE.features import "
    "FEATURE_NAMES; X, _ = make_dataset(256, seed=3); "
    "print(json.dumps([dict(zip(FEATURE_NAMES, map(float, x))) for x in X]))"
)
# The served model's name (the v2 routes' {name}).
MODEL_NAME_CODE = "from PACKAGE import MODEL_NAME; print(MODEL_NAME)"


def v2_body(rows: list[dict[str, float]], inputs: list[dict[str, Any]]) -> str:
    """An Open Inference Protocol request for ``rows``: one JSON tensor per input of the
    model's metadata (``inputs``), in its datatype."""
    tensors = []
    for spec in inputs:
        values = [row[spec["name"]] for row in rows]
        data = [int(v) for v in values] if spec["datatype"] == "INT64" else values
        tensors.append(
            {"name": spec["name"], "shape": [len(rows)], "datatype": spec["datatype"], "data": data}
        )
    return json.dumps({"inputs": tensors})


# Prints one JSON line at the end of a run: counts, errors and latency percentiles (us).
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, '
    .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p95_us": %d, '
    .. '"p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


Scenario = tuple[str, Path, int, int]
"""URL, wrk script, connections and the server's process id."""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: requests, errors and latency percentiles."""

    requests: int
    seconds: float
    socket_errors: int
    non_2xx: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cpu_us_per_request: float | None = None

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def pinned(cpu: str) -> list[str]:
    """``taskset -c CPU`` when taskset exists and the machine has that CPU, else nothing."""
    taskset = shutil.which("taskset")
    if taskset is None or (os.cpu_count() or 1) <= int(cpu):
        return []
    return [taskset, "-c", cpu]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET ``url`` without any proxy; the status and body (errors too)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def production_arguments(app: str, port: int) -> list[str]:
    """The backend's container command (``uvicorn APP --host ... --port ...``), with
    ``app`` and a loopback address; everything else as in production."""
    from mlgen_fastapi import BACKEND

    command = list(BACKEND.container.command)
    command[1] = app
    command[command.index("--host") + 1] = HOST
    command[command.index("--port") + 1] = str(port)
    return command[1:]


@contextmanager
def server(
    command: list[str], port: int, *, cwd: Path, env: dict[str, str], ready_path: str
) -> Iterator[tuple[str, int]]:
    """Run ``command`` (listening on ``port``) pinned to the server CPU until the block
    ends; yield its base URL and process id. The whole process group is always stopped
    (:func:`mlgen_runtime.process.running`)."""
    from mlgen_runtime.process import running

    base_url = f"http://{HOST}:{port}"
    with running(
        [*pinned(SERVER_CPU), *command],
        base_url + ready_path,
        timeout=READY_TIMEOUT_S,
        env=env,
        cwd=cwd,
    ) as started:
        yield base_url, started.pid


def uvicorn_server(
    python: Path, app: str, *, cwd: Path, env: dict[str, str], ready_path: str
) -> AbstractContextManager[tuple[str, int]]:
    """``python -m uvicorn APP`` with the production arguments (see :func:`server`)."""
    from mlgen_runtime.process import free_port

    port = free_port()
    command = [str(python), "-m", "uvicorn", *production_arguments(app, port)]
    return server(command, port, cwd=cwd, env=env, ready_path=ready_path)


def bentoml_server(
    environment: Path, service_dir: Path, model: Path, features: list[str], home: Path
) -> AbstractContextManager[tuple[str, int]]:
    """``bentoml serve service:Model`` (default settings) of ``model`` (see :func:`server`)."""
    from mlgen_runtime.process import free_port

    port = free_port()
    env = {
        **os.environ,
        "BENCH_MODEL_PATH": str(model),
        "BENCH_FEATURES": json.dumps(features),
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    env.pop("PYTHONPATH", None)
    command = [
        str(environment / "bin" / "bentoml"),
        "serve",
        "service:Model",
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    return server(command, port, cwd=service_dir, env=env, ready_path="/readyz")


def wrk_script(folder: Path, name: str, method: str = "GET", body: str | None = None) -> Path:
    """A wrk Lua script sending ``method`` with a JSON ``body`` and printing WRK_JSON."""
    lines = [f'wrk.method = "{method}"']
    if body is not None:
        lines += [
            f"wrk.body = {json.dumps(body)}",
            'wrk.headers["Content-Type"] = "application/json"',
        ]
    path = folder / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n" + WRK_REPORT, encoding="utf-8")
    return path


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (``None`` where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(
    url: str, script: Path, connections: int, seconds: float, server_pid: int | None = None
) -> WrkResult:
    """One bounded wrk run (one thread, pinned to the client CPU); with ``server_pid``,
    also the server's CPU time per request (less sensitive to a busy machine than the
    rate: other processes taking the CPU lower the rate, not the CPU per request)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed; run: bash scripts/system-tools")
    command = [
        *pinned(CLIENT_CPU),
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    cpu_before = cpu_seconds(server_pid) if server_pid else None
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    cpu_after = cpu_seconds(server_pid) if server_pid else None
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stdout}{result.stderr}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    cpu = None
    if cpu_before is not None and cpu_after is not None and data["requests"]:
        cpu = (cpu_after - cpu_before) / data["requests"] * 1e6
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        non_2xx=data["status"],
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        cpu_us_per_request=cpu,
    )


def repo_python(repo: Path, environment: Path, code: str) -> str:
    """Run ``code`` with the repository's package importable; its stdout."""
    from mlgen.environments import run_in_repo

    result = run_in_repo(repo, environment, ["python", "-c", code], timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"{code!r} failed:\n{result.stdout}{result.stderr}")
    return str(result.stdout)


def prepare_repo(scratch: Path) -> tuple[Path, Path, str, float]:
    """Render and train: the repository, its environment, package and SLO (ms)."""
    from mlgen.environments import run_in_repo, shared_environment
    from mlgen.generate import generate

    print("rendering the repository and building its environment", file=sys.stderr)
    repo = generate(scratch / "bench-serving", plain_template(scratch), ANSWERS, defaults=True)
    environment = shared_environment(repo)
    import yaml

    answers = yaml.safe_load((repo / ".copier-answers.yml").read_text(encoding="utf-8"))
    package = str(answers["package_name"])
    print("training the model", file=sys.stderr)
    trained = run_in_repo(
        repo,
        environment,
        ["python", "-m", f"{package}.train", "--source", "synthetic", "--no-register"],
        timeout=900,
    )
    if trained.returncode != 0:
        raise RuntimeError(f"training failed:\n{trained.stdout}{trained.stderr}")
    return repo, environment, package, float(answers["latency_slo_p95_ms"])


def server_environment(repo: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), **extra}
    env.pop("PYTHONHOME", None)
    return env


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds per wrk run (default 5; --quick: 1)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        help="seconds of untimed load per scenario first (default 2)",
    )
    parser.add_argument("--bentoml", dest="bentoml", action="store_true", default=None)
    parser.add_argument(
        "--no-bentoml",
        dest="bentoml",
        action="store_false",
        help="skip the BentoML baseline (default: run it, except with --quick)",
    )
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 5)
    duration = args.duration or (1.0 if args.quick else 5.0)
    warmup = 1.0 if args.quick else args.warmup
    with_bentoml = (not args.quick) if args.bentoml is None else args.bentoml
    started = time.time()
    environment = environment_info()
    with scratch_dir("serving", keep=args.keep) as scratch:
        repo, repo_env, package, slo_ms = prepare_repo(scratch)
        python = repo_env / "bin" / "python"
        rows = json.loads(repo_python(repo, repo_env, EXAMPLE_ROWS.replace("PACKAGE", package)))
        implementations = repo_python(repo, repo_env, UVICORN_IMPLEMENTATIONS)
        bento_env = (
            benchmark_environment(BENCH_DIR / "requirements-bentoml.txt") if with_bentoml else None
        )
        extra_dir = scratch / "apps"
        extra_dir.mkdir()
        (extra_dir / "hello_app.py").write_text(HELLO_APP, encoding="utf-8")
        (extra_dir / "route_only.py").write_text(
            ROUTE_ONLY_APP.replace("PACKAGE", package), encoding="utf-8"
        )
        (extra_dir / "service.py").write_text(BENTO_SERVICE, encoding="utf-8")
        scripts = {
            "single": wrk_script(scratch, "single", "POST", json.dumps(rows[0])),
            "batch": wrk_script(
                scratch, "batch", "POST", json.dumps({"instances": rows[:BATCH_ROWS]})
            ),
            "hello": wrk_script(scratch, "hello"),
            "bentoml": wrk_script(scratch, "bentoml", "POST", json.dumps({"row": rows[0]})),
        }
        app = f"{package}.serving.app:app"
        model = repo / "artifacts" / "model.onnx"
        with ExitStack() as servers:
            print("starting the servers", file=sys.stderr)

            def start(app_name: str, cwd: Path, ready: str, **extra: str) -> tuple[str, int]:
                env = server_environment(repo, **extra)
                if cwd != repo:
                    env["PYTHONPATH"] = os.pathsep.join([str(cwd), env["PYTHONPATH"]])
                return servers.enter_context(
                    uvicorn_server(python, app_name, cwd=cwd, env=env, ready_path=ready)
                )

            service, service_pid = start(app, repo, "/ready")
            no_drift, no_drift_pid = start(app, repo, "/ready", ONLINE_DRIFT="0")
            route, route_pid = start("route_only:app", extra_dir, "/ready")
            hello, hello_pid = start("hello_app:app", extra_dir, "/")
            model_name = repo_python(repo, repo_env, MODEL_NAME_CODE.replace("PACKAGE", package))
            infer = f"{service}/v2/models/{model_name.strip()}"
            inputs = json.loads(http_get(infer)[1])["inputs"]
            for label, batch in (("v2-single", rows[:1]), ("v2-batch", rows[:BATCH_ROWS])):
                scripts[label] = wrk_script(scratch, label, "POST", v2_body(batch, inputs))
            scenarios: dict[str, Scenario] = {
                "hello 1c": (hello + "/", scripts["hello"], 1, hello_pid),
                "single 1c": (service + "/predict", scripts["single"], 1, service_pid),
                "single no-drift 1c": (no_drift + "/predict", scripts["single"], 1, no_drift_pid),
                "hello 8c": (hello + "/", scripts["hello"], 8, hello_pid),
                "single 8c": (service + "/predict", scripts["single"], 8, service_pid),
                "single route-only 8c": (route + "/predict", scripts["single"], 8, route_pid),
                "batch64 8c": (service + "/predict", scripts["batch"], 8, service_pid),
                "v2 single 8c": (infer + "/infer", scripts["v2-single"], 8, service_pid),
                "v2 batch64 8c": (infer + "/infer", scripts["v2-batch"], 8, service_pid),
            }
            if bento_env is not None:
                bento, _ = servers.enter_context(
                    bentoml_server(
                        bento_env, extra_dir, model, list(rows[0]), scratch / "bentoml-home"
                    )
                )
                # No CPU figure: bentoml serve runs its workers in child processes.
                for connections in (1, 8):
                    scenarios[f"bentoml {connections}c"] = (
                        bento + "/predict",
                        scripts["bentoml"],
                        connections,
                        0,
                    )
            results = measure(scenarios, repeats, duration, warmup)
            psi_exported = b"model_feature_psi{" in http_get(service + "/metrics")[1]
            rss_mb = rss_megabytes(service_pid)
        measurements, comparisons = summarise(results, slo_ms)
        errors = {
            label: sum(r.socket_errors + r.non_2xx for r in runs) for label, runs in results.items()
        }
        checks = {
            "no socket errors or non-2xx answers": "ok"
            if not any(errors.values())
            else f"FAILED: {errors}",
            "model_feature_psi exported after the runs": psi_exported,
            "service RSS after the runs (MB)": rss_mb,
        }
        parameters = {
            "repeats": repeats,
            "duration_s": duration,
            "warmup_s": warmup,
            "batch_rows": BATCH_ROWS,
            "server_cpu": SERVER_CPU if pinned(SERVER_CPU) else None,
            "client_cpu": CLIENT_CPU if pinned(CLIENT_CPU) else None,
            "server_command": ["python", "-m", "uvicorn", *production_arguments(app, 0)],
            "uvicorn": json.loads(implementations),
            "bentoml": [
                line
                for line in (BENCH_DIR / "requirements-bentoml.txt").read_text().splitlines()
                if line and not line.startswith("#")
            ]
            if bento_env
            else "not run",
            "bentoml_command": "bentoml serve service:Model --host 127.0.0.1 --port P",
            "latency_slo_p95_ms": slo_ms,
            "wrk": "wrk -t1 -c{1,8} --timeout 10s",
        }
        write_result(
            NAME, args, started, environment, parameters, measurements, comparisons, checks
        )
        return 0 if not any(errors.values()) else 1


def measure(
    scenarios: dict[str, Scenario], repeats: int, duration: float, warmup: float
) -> dict[str, list[WrkResult]]:
    """Warm every scenario up, then run them all ``repeats`` times, alternating."""
    for label, (url, script, connections, _) in scenarios.items():
        run_wrk(url, script, connections, warmup)
        print(f"  warm-up  {label}", file=sys.stderr, flush=True)
    results: dict[str, list[WrkResult]] = {label: [] for label in scenarios}
    names = list(scenarios)
    for round_index in range(repeats):
        for label in names if round_index % 2 == 0 else names[::-1]:
            url, script, connections, pid = scenarios[label]
            result = run_wrk(url, script, connections, duration, pid)
            results[label].append(result)
            print(
                f"  run {round_index + 1}    {label}: {result.rate:.0f} req/s, "
                f"p50 {result.p50_ms:.2f} ms, p95 {result.p95_ms:.2f} ms, "
                f"errors {result.socket_errors + result.non_2xx}",
                file=sys.stderr,
                flush=True,
            )
    return results


def rss_megabytes(pid: int) -> float | None:
    """Resident memory of a process, from /proc (``None`` where there is no /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def summarise(
    results: dict[str, list[WrkResult]], slo_ms: float
) -> tuple[dict[str, Measurement], list[dict[str, Any]]]:
    """Medians per scenario and the comparisons against the targets."""
    measurements: dict[str, Measurement] = {}
    for label, runs in results.items():
        rows = BATCH_ROWS if "batch" in label else 1
        measurements[f"{label} req/s"] = Measurement([r.rate for r in runs], "req/s")
        measurements[f"{label} rows/s"] = Measurement([r.rate * rows for r in runs], "rows/s")
        measurements[f"{label} p50"] = Measurement([r.p50_ms for r in runs], "ms")
        measurements[f"{label} p95"] = Measurement([r.p95_ms for r in runs], "ms")
        measurements[f"{label} p99"] = Measurement([r.p99_ms for r in runs], "ms")
        cpu = [r.cpu_us_per_request for r in runs if r.cpu_us_per_request is not None]
        if cpu:
            measurements[f"{label} cpu/request"] = Measurement(cpu, "us")
    measurements["latency SLO p95"] = Measurement([slo_ms], "ms")

    comparisons: list[dict[str, Any]] = []

    def versus(name: str, figure: str, baseline: str, **kwargs: Any) -> None:
        """Compare two cases' medians, when both were measured (BentoML, CPU are optional)."""
        if figure in measurements and baseline in measurements:
            figure_value, baseline_value = (
                measurements[figure].median,
                measurements[baseline].median,
            )
            comparisons.append(
                comparison(name, figure, figure_value, baseline, baseline_value, **kwargs)
            )

    throughput = {"target": TARGETS["throughput"], "higher_is_better": True}
    for c in ("1c", "8c"):
        versus(
            f"throughput, single row vs hello-world, {c}",
            f"single {c} req/s",
            f"hello {c} req/s",
            **throughput,
        )
        versus(
            f"p95 latency, single row vs hello-world, {c}",
            f"single {c} p95",
            f"hello {c} p95",
            target=TARGETS["p95"],
            higher_is_better=False,
        )
    versus(
        "server CPU per request, single row vs hello-world, 8c",
        "single 8c cpu/request",
        "hello 8c cpu/request",
        target=1 / TARGETS["throughput"],
        higher_is_better=False,
        ratio_definition="figure / baseline (the throughput target, as CPU time)",
    )
    versus(
        "rows/s, 64-row batches vs single rows, 8c",
        "batch64 8c rows/s",
        "single 8c rows/s",
        target=TARGETS["batch"],
        higher_is_better=True,
    )
    versus(
        "p95 latency, single row 8c vs 10 % of the latency SLO",
        "single 8c p95",
        "latency SLO p95",
        target=TARGETS["slo_share"],
        higher_is_better=False,
    )
    versus(
        "throughput, fast path vs the FastAPI route alone, 8c",
        "single 8c req/s",
        "single route-only 8c req/s",
        target=TARGETS["fast_path"],
        higher_is_better=True,
    )
    for c in ("1c", "8c"):
        versus(
            f"throughput, single row vs BentoML, {c}",
            f"single {c} req/s",
            f"bentoml {c} req/s",
            target=TARGETS["bentoml"],
            higher_is_better=True,
        )
        versus(
            f"p95 latency, single row vs BentoML, {c}",
            f"single {c} p95",
            f"bentoml {c} p95",
            target=1.0,
            higher_is_better=False,
        )
    v2 = {"target": TARGETS["v2"], "higher_is_better": True}
    versus(
        "throughput, v2 infer vs /predict, single row, 8c",
        "v2 single 8c req/s",
        "single 8c req/s",
        **v2,
    )
    versus(
        "rows/s, v2 infer vs /predict, 64-row batches, 8c",
        "v2 batch64 8c rows/s",
        "batch64 8c rows/s",
        **v2,
    )
    drift_overhead = {"target": TARGETS["drift_overhead"], "higher_is_better": False}
    versus(
        "p50 latency, online drift on vs off, 1c",
        "single 1c p50",
        "single no-drift 1c p50",
        **drift_overhead,
    )
    versus(
        "server CPU per request, online drift on vs off, 1c",
        "single 1c cpu/request",
        "single no-drift 1c cpu/request",
        **drift_overhead,
    )
    return measurements, comparisons


if __name__ == "__main__":
    sys.exit(main())
