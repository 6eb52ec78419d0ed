"""Ray Serve serving backend for mlgen.

Written exactly as a third-party plugin is: it is named by an entry point in the
``mlgen`` group and uses only the public ``mlgen`` API. The generated repository serves
the runtime's FastAPI app (``mlgen_runtime.serving``) as the ingress of one
``@serve.deployment``; ``serve_config.yaml`` is what ``serve run`` and ``serve deploy``
read. It uses the plugin API's newer fields: a startup probe (Ray takes about a minute
to start), environment variables, a memory-backed ``/dev/shm`` for Ray's object store,
a larger ``/tmp`` for Ray's session files, a kustomize patch of the Deployment,
serving-image dependencies apart from training ones, and ``mlgen_prepare_environment``
to precompile Ray's bytecode.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import mlgen
from mlgen_rayserve import checks

MLGEN_PLUGIN_API = 1

RAY_VERSION = "2.60.0"
"""The Ray release generated repositories serve with (``ray[serve]``), pinned."""
HTTP_PORT = 8000
"""Ray Serve's HTTP proxy port (its default)."""
HEALTH_PATH = "/-/healthz"
"""Ray Serve's proxy health route: 200 once the proxy has the application's routes."""
PATCH_PATH = "deploy/k8s/base/deployment/rayserve.yaml"
_PREPARED_MARKER = f".mlgen-rayserve-{RAY_VERSION}-compiled"

# The runtime app's metrics (mlgen_runtime.serving), scraped through Serve's proxy: one
# replica per pod, so each pod's /metrics is that replica's registry.
_ENDPOINT = 'endpoint="/predict"'

BACKEND = mlgen.Backend(
    name="rayserve",
    description="Ray Serve deployment with the runtime's FastAPI app as its ingress (ONNX)",
    export_format="onnx",
    templates_package=__name__,
    templates_dir="files",
    container=mlgen.ContainerSpec(
        base_image="python:{python_version}-slim",
        command=("serve", "run", "/app/serve_config.yaml"),
        ports=(mlgen.Port("http", HTTP_PORT),),
        # Ray's GCS, raylet, dashboard and Serve controller start first: up to
        # 10 + 5 * 34 = 180 s before liveness may restart the container.
        startup=mlgen.Probe(
            HEALTH_PATH, "http", initial_delay_seconds=10, period_seconds=5, failure_threshold=34
        ),
        # Readiness goes through Serve's proxy to the replica: the runtime app's /ready
        # answers 200 once the model is loaded (503 with the reason otherwise).
        readiness=mlgen.Probe("/ready", "http", initial_delay_seconds=0, period_seconds=5),
        liveness=mlgen.Probe(
            HEALTH_PATH, "http", initial_delay_seconds=0, period_seconds=10, timeout_seconds=5
        ),
        resources=mlgen.Resources(
            cpu_request="1", memory_request="2Gi", cpu_limit="2", memory_limit="4Gi"
        ),
        metrics_port="http",
        env=(
            mlgen.EnvVar("MODEL_PATH", "/app/artifacts/model.onnx"),
            # Ray writes ~/.ray and its session files: both on the writable volumes.
            mlgen.EnvVar("HOME", "/tmp"),
            mlgen.EnvVar("RAY_USAGE_STATS_ENABLED", "0"),
        ),
        # Ray's object store lives in /dev/shm; the container's default is 64 MiB.
        volumes=(mlgen.Volume("dshm", "/dev/shm", size_limit="1Gi", medium="Memory"),),
        # Session logs and spilled objects go to /tmp/ray.
        tmp_size_limit="2Gi",
    ),
    smoke_test=("python", "-m", "{package_name}.serving.smoke"),
    metrics=mlgen.MetricQueries(
        request_rate=f"sum(rate(model_requests_total{{{{selector}}, {_ENDPOINT}}}[{{window}}]))",
        error_rate=(
            f'sum(rate(model_requests_total{{{{selector}}, {_ENDPOINT}, status=~"5.."}}'
            "[{window}]))"
        ),
        latency_quantile=(
            "histogram_quantile({quantile}, sum by (le) (rate("
            f"model_request_duration_seconds_bucket{{{{selector}}, {_ENDPOINT}}}[{{window}}])))"
        ),
    ),
    runtime_extras=("serving", "onnx"),
    serving_runtime_extras=("serving",),
    serving_dependencies=(f"ray[serve]=={RAY_VERSION}", "onnxruntime>=1.18"),
    # FastAPI's TestClient for the in-process tests (httpx2: without a deprecation warning).
    dev_dependencies=("httpx>=0.27", "httpx2>=2.0"),
    kustomize_patches=(PATCH_PATH,),
    # Ray starts in ~25 s on 2 idle cores, over a minute under load; the smoke test
    # also trains and waits for the replica.
    contract_timeouts=mlgen.ContractTimeouts(smoke_seconds=1200),
)


@mlgen.hookimpl
def mlgen_register_backends(register: Callable[[mlgen.Backend], None]) -> None:
    """Register the Ray Serve backend."""
    register(BACKEND)


@mlgen.hookimpl
def mlgen_prepare_environment(environment: Path, answers: Mapping[str, Any]) -> None:
    """Precompile Ray's bytecode once per environment (PYTHONDONTWRITEBYTECODE=1 and no
    .pyc files make Ray's dashboard agent too slow for the raylet, which then dies)."""
    if answers.get("serving_backend") != BACKEND.name:
        return
    marker = environment / _PREPARED_MARKER
    python = environment / "bin" / "python"
    if marker.is_file() or not python.exists():
        return
    code = "import sys; from mlgen_runtime.backends.rayserve import compile_ray; " + (
        "sys.exit(0 if compile_ray(sys.executable) else 3)"
    )
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    if result.returncode == 0:
        marker.write_text("compiled\n", encoding="utf-8")


@mlgen.hookimpl
def mlgen_register_checks(
    register: Callable[[mlgen.Check], None], answers: Mapping[str, Any]
) -> None:
    """``rayserve-config``: serve_config.yaml is a valid Serve config for this repository."""
    if answers.get("serving_backend") != BACKEND.name:
        return
    register(
        mlgen.Check(
            "rayserve-config",
            checks.serve_config,
            inputs=("serve_config.yaml", "src/"),
            description="serve_config.yaml passes Ray Serve's own schema and names this "
            "repository's deployment, port and route.",
        )
    )
