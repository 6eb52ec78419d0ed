"""TensorFlow Serving backend for mlgen: a Keras model exported as a SavedModel.

Written exactly as a third-party plugin is: it is named by an entry point in the
``mlgen`` group and uses only the public ``mlgen`` API.

Two backends are registered, the same files and server with different resources:

* ``tfserving``: the CPU image ``tensorflow/serving:<version>``;
* ``tfserving-gpu``: the ``-gpu`` image, one ``nvidia.com/gpu`` per pod.

Paths that name the model (the REST probes) use the ``{model_name}`` placeholder, which
the generated files replace with the ``model_name`` answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import mlgen

from .checks import tfserving_checks

MLGEN_PLUGIN_API = 1

TF_SERVING_VERSION = "2.20.0"
"""The TF Serving release of the image; TensorFlow and tensorflow-serving-api match it."""
GRPC_PORT = 8500
HTTP_PORT = 8501
MODELS_DIR = "/models"
"""Where the image holds the configuration files and the model's versions."""
METRICS_PATH = "/monitoring/prometheus/metrics"
CONFIG_FILES = ("models.config", "monitoring.config", "batching.config")

_MODEL = "{model_name}"
_SERVER_ERRORS = "UNKNOWN|INTERNAL|UNAVAILABLE|DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED|DATA_LOSS"
"""request_count statuses of requests the server failed (HTTP 5xx and 429)."""
_INFERENCE_API = "(?i)predict|classify|regress"
"""The ``API`` label of inference requests: ``Predict`` over gRPC, ``predict`` over REST."""

COMMAND: tuple[str, ...] = (
    "tensorflow_model_server",
    f"--port={GRPC_PORT}",
    f"--rest_api_port={HTTP_PORT}",
    f"--model_config_file={MODELS_DIR}/models.config",
    f"--monitoring_config_file={MODELS_DIR}/monitoring.config",
    "--enable_batching=true",
    f"--batching_parameters_file={MODELS_DIR}/batching.config",
    "--tensorflow_intra_op_parallelism=2",
    "--tensorflow_inter_op_parallelism=2",
)

# TF Serving counts every /v1 request in request_count (probes too, whose failures while
# the model loads are NOT_FOUND) and times only successful ones, labelled with the API.
# Inference requests are therefore the timed ones plus the failed ones that are not
# NOT_FOUND; errors are the server-side failures. Latency buckets are microseconds.
METRICS = mlgen.MetricQueries(
    request_rate=(
        "(sum(rate(:tensorflow:serving:request_latency_count{{selector}, "
        'API=~"' + _INFERENCE_API + '"}[{window}])) or vector(0))'
        " + (sum(rate(:tensorflow:serving:request_count{{selector}, "
        'status!~"OK|NOT_FOUND"}[{window}])) or vector(0))'
    ),
    error_rate=(
        "sum(rate(:tensorflow:serving:request_count{{selector}, "
        'status=~"' + _SERVER_ERRORS + '"}[{window}]))'
    ),
    latency_quantile=(
        "histogram_quantile({quantile}, sum by (le) (rate("
        ":tensorflow:serving:request_latency_bucket{{selector}, "
        'API=~"' + _INFERENCE_API + '"}[{window}]))) / 1e6'
    ),
)


def make_backend(name: str, *, gpus: int) -> mlgen.Backend:
    """The TF Serving backend called ``name``, with ``gpus`` GPUs per pod (0 or 1)."""
    image = f"tensorflow/serving:{TF_SERVING_VERSION}" + ("-gpu" if gpus else "")
    if gpus:
        resources = mlgen.Resources(
            cpu_request="1", memory_request="2Gi", cpu_limit="4", memory_limit="8Gi", gpus=gpus
        )
        description = (
            "TensorFlow Serving on one NVIDIA GPU for a Keras model exported as a SavedModel"
        )
    else:
        resources = mlgen.Resources(
            cpu_request="500m", memory_request="512Mi", cpu_limit="2", memory_limit="1Gi"
        )
        description = (
            "TensorFlow Serving (REST and gRPC) for a Keras model exported as a SavedModel"
        )
    return mlgen.Backend(
        name=name,
        description=description,
        export_format="savedmodel",
        templates_package=__name__,
        templates_dir="files",
        container=mlgen.ContainerSpec(
            base_image=image,
            command=COMMAND,
            ports=(mlgen.Port("grpc", GRPC_PORT), mlgen.Port("http", HTTP_PORT)),
            # The metadata endpoint answers 200 only once a version is loaded and
            # servable; the model status answers 200 as soon as the model is known (even
            # while it loads or after it failed), so it is the liveness probe.
            readiness=mlgen.Probe(
                f"/v1/models/{_MODEL}/metadata", "http", initial_delay_seconds=5, period_seconds=5
            ),
            liveness=mlgen.Probe(
                f"/v1/models/{_MODEL}", "http", initial_delay_seconds=15, period_seconds=10
            ),
            resources=resources,
            metrics_port="http",
            metrics_path=METRICS_PATH,
        ),
        smoke_test=("python", "-m", "{package_name}.serving.smoke"),
        metrics=METRICS,
        dependencies=(
            # TensorFlow's PyPI wheel (not -cpu): tensorflow-serving-api requires it, and
            # without the [and-cuda] extra it brings no CUDA libraries.
            "tensorflow>=2.20,<2.21",
            # TF Serving's config and API protos: models.config is read with them.
            "tensorflow-serving-api>=2.20,<2.21",
        ),
    )


BACKENDS = (make_backend("tfserving", gpus=0), make_backend("tfserving-gpu", gpus=1))


@mlgen.hookimpl
def mlgen_register_backends(register: Callable[[mlgen.Backend], None]) -> None:
    """Register the TF Serving backends (CPU and one-GPU)."""
    for backend in BACKENDS:
        register(backend)


@mlgen.hookimpl
def mlgen_register_checks(
    register: Callable[[mlgen.Check], None], repo: Path, answers: Mapping[str, Any]
) -> None:
    """Register the TF Serving config and SavedModel checks for repositories of ours."""
    backend = next((b for b in BACKENDS if b.name == answers.get("serving_backend")), None)
    if backend is None:
        return
    for check in tfserving_checks(backend, answers):
        register(check)
