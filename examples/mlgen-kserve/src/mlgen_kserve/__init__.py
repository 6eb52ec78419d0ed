"""KServe InferenceService (Open Inference Protocol v2) serving an ONNX model.

An mlgen backend plugin: named by the entry point ``kserve`` in the ``mlgen``
group (see pyproject.toml), built only on the public ``mlgen`` API.

The generated repository serves its ONNX model with KServe's own Python model server
(``kserve.ModelServer`` running a ``kserve.Model`` subclass that calls ONNX Runtime), so
the same image runs as a plain Kubernetes Deployment (``deploy/k8s``, from the
``ContainerSpec`` below) and as the custom predictor of a KServe ``InferenceService``
(``deploy/kserve/inferenceservice.yaml``, contributed by this plugin).

Importing this module stays cheap (mlgen imports every plugin on every command): the
``kserve`` package is only imported by the checks, when ``mlgen check`` runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import mlgen

from mlgen_kserve import checks

MLGEN_PLUGIN_API = 1
"""The mlgen plugin API major this plugin was written for; mlgen refuses a mismatch."""

KSERVE_VERSION = "0.21.0"
"""The KServe model server the generated repositories run (PyPI ``kserve``), pinned."""

HTTP_PORT = 8080
"""KServe's default HTTP port (REST: Open Inference Protocol v2 and v1)."""
GRPC_PORT = 8081
"""KServe's default gRPC port (Open Inference Protocol v2 ``GRPCInferenceService``)."""

READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
INFERENCESERVICE_PATH = "deploy/kserve/inferenceservice.yaml"
GRACE_PATCH_PATH = "deploy/k8s/base/deployment/graceful-shutdown.yaml"

# The model server's Prometheus metrics (``GET /metrics`` on the HTTP port):
# * KServe's own per-stage latency histograms, labelled ``model_name``:
#   ``request_preprocess_seconds``, ``request_predict_seconds``,
#   ``request_postprocess_seconds``. Every request that reaches the model is timed by
#   the preprocess histogram, failed or not, so its ``_count`` is the request count.
# * What the generated ``kserve.Model`` adds: ``model_inference_errors_total`` (by
#   ``reason``: ``invalid_input`` for 4xx, ``internal`` for 5xx) and
#   ``model_prediction_probability`` (the dashboard's prediction distribution).
_REQUESTS = "request_preprocess_seconds_count{{selector}}"
_ERRORS = 'model_inference_errors_total{{selector}, reason="internal"}'
_LATENCY = "request_predict_seconds_bucket{{selector}}"

BACKEND = mlgen.Backend(
    name="kserve",
    description="KServe InferenceService (Open Inference Protocol v2) serving an ONNX model",
    export_format="onnx",
    templates_package=__name__,
    templates_dir="files",
    container=mlgen.ContainerSpec(
        base_image="python:{python_version}-slim-bookworm",
        command=(
            "python",
            "-m",
            "{package_name}.serving.model",
            "--http_port",
            str(HTTP_PORT),
            "--grpc_port",
            str(GRPC_PORT),
        ),
        ports=(mlgen.Port("http", HTTP_PORT), mlgen.Port("grpc", GRPC_PORT)),
        # The server listens only once the model is loaded (KServe refuses to start
        # without a ready model), so "server ready" means "model ready". Importing the
        # kserve package takes several seconds on a small CPU share: the startup probe
        # gives it up to 2 minutes (5 + 5 * 23 s) before liveness may restart it.
        startup=mlgen.Probe(
            LIVE_PATH, "http", initial_delay_seconds=5, failure_threshold=23, period_seconds=5
        ),
        readiness=mlgen.Probe(READY_PATH, "http", initial_delay_seconds=0, period_seconds=5),
        liveness=mlgen.Probe(LIVE_PATH, "http", initial_delay_seconds=0, period_seconds=10),
        resources=mlgen.Resources(
            cpu_request="500m", memory_request="512Mi", cpu_limit="1", memory_limit="1Gi"
        ),
        metrics_port="http",
        metrics_path="/metrics",
        # The model the image carries, named in the manifest too (the server's default).
        env=(mlgen.EnvVar("MODEL_PATH", "/app/artifacts/model.onnx"),),
    ),
    smoke_test=("python", "-m", "{package_name}.serving.smoke"),
    metrics=mlgen.MetricQueries(
        request_rate=f"sum(rate({_REQUESTS}[{{window}}]))",
        error_rate=f"sum(rate({_ERRORS}[{{window}}]))",
        latency_quantile=(
            f"histogram_quantile({{quantile}}, sum by (le) (rate({_LATENCY}[{{window}}])))"
        ),
    ),
    dependencies=("onnx>=1.16", "skl2onnx>=1.17"),
    dev_dependencies=(),
    # What the image installs (beside mlgen-runtime and the package): no training stack.
    serving_dependencies=(
        f"kserve=={KSERVE_VERSION}",
        "onnxruntime>=1.18",
        "prometheus-client>=0.20",
    ),
    # KServe drains in-flight requests on SIGTERM: give it longer than the base's 30 s.
    kustomize_patches=(GRACE_PATCH_PATH,),
)


@mlgen.hookimpl
def mlgen_register_backends(register: Callable[[mlgen.Backend], None]) -> None:
    """Register the kserve backend."""
    register(BACKEND)


@mlgen.hookimpl
def mlgen_register_checks(
    register: Callable[[mlgen.Check], None], repo: Path, answers: Mapping[str, Any]
) -> None:
    """Checks of repositories that use this backend: the InferenceService manifest."""
    if answers.get("serving_backend") != BACKEND.name:
        return
    for name, run in checks.for_backend(BACKEND, answers):
        register(
            mlgen.Check(
                name, run, requires=("kserve", "yaml"), install_hint="pip install mlgen-kserve"
            )
        )
