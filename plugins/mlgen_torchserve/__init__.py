"""TorchServe serving backend for mlgen: a PyTorch model exported to TorchScript.

Written exactly as a third-party plugin is: it is named by an entry point in the
``mlgen`` group and uses only the public ``mlgen`` API.

Two backends share the same files: ``torchserve`` (CPU image) and ``torchserve-gpu``
(the CUDA image, one ``nvidia.com/gpu`` per pod); the ``serving_backend`` answer picks one.

Ports of the container: ``http`` (TorchServe's inference API), ``management``,
``metrics`` (Prometheus) and ``health``. The probes use ``health``, served by the
container's main process (``python -m mlgen_runtime.backends.torchserve``): the
production config keeps TorchServe's token authorization on, and then TorchServe's own
``/ping`` refuses a request without the inference token (400), which the kubelet cannot
send.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import mlgen

from . import checks as _checks

MLGEN_PLUGIN_API = 1

TORCHSERVE_VERSION = "0.12.0"
TORCH_VERSION = "2.13.0"
INFERENCE_PORT = 8080
MANAGEMENT_PORT = 8081
METRICS_PORT = 8082
HEALTH_PORT = 8083
HOME = "/home/model-server"

PORTS = (
    mlgen.Port("http", INFERENCE_PORT),
    mlgen.Port("management", MANAGEMENT_PORT),
    mlgen.Port("metrics", METRICS_PORT),
    mlgen.Port("health", HEALTH_PORT),
)
COMMAND = (
    "python",
    "-m",
    "mlgen_runtime.backends.torchserve",
    "--config",
    f"{HOME}/config.properties",
    "--workdir",
    "/tmp/torchserve",
    "--health-port",
    str(HEALTH_PORT),
)
# /ready: the model has a READY worker (management API); /live: TorchServe runs and
# its frontend answers. The model is ready ~5 s after start on one core.
READINESS = mlgen.Probe(
    "/ready", "health", initial_delay_seconds=5, period_seconds=5, timeout_seconds=3
)
LIVENESS = mlgen.Probe(
    "/live", "health", initial_delay_seconds=30, period_seconds=10, timeout_seconds=5
)
METRICS = mlgen.MetricQueries(
    # Every inference request TorchServe received, whatever its outcome.
    request_rate="sum(rate(ts_inference_requests_total{{selector}}[{window}]))",
    # Server errors (5xx) of TorchServe's APIs: worker failures, timeouts, a full queue.
    error_rate="sum(rate(Requests5XX{{selector}}[{window}]))",
    # Time in the handler per worker call (TorchServe 0.12 has no latency histogram of
    # its own; ts_inference_latency_microseconds is a sum, see docs/serving.md).
    latency_quantile=(
        "histogram_quantile({quantile}, sum by (le) "
        "(rate(model_handler_duration_seconds_bucket{{selector}}[{window}])))"
    ),
)
DEPENDENCIES = (
    # The CPU build: with UV_FIND_LINKS/--find-links pointing at a folder holding
    # torch-2.13.0+cpu (or PyTorch's CPU index) it is preferred over PyPI's CUDA build.
    f"torch=={TORCH_VERSION}",
    f"torchserve=={TORCHSERVE_VERSION}",
    f"torch-model-archiver=={TORCHSERVE_VERSION}",
    # TorchServe's workers import yaml without declaring it; without it they restart forever.
    "pyyaml>=6.0",
)


def _backend(name: str, description: str, image_flavour: str, resources: mlgen.Resources) -> Any:
    return mlgen.Backend(
        name=name,
        description=description,
        export_format="torchscript",
        templates_package=__name__,
        templates_dir="files",
        container=mlgen.ContainerSpec(
            base_image=f"pytorch/torchserve:{TORCHSERVE_VERSION}-{image_flavour}",
            command=COMMAND,
            ports=PORTS,
            readiness=READINESS,
            liveness=LIVENESS,
            resources=resources,
            metrics_port="metrics",
            metrics_path="/metrics",
        ),
        smoke_test=("python", "-m", "{package_name}.serving.smoke"),
        metrics=METRICS,
        dependencies=DEPENDENCIES,
    )


BACKEND = _backend(
    "torchserve",
    "TorchServe (CPU) serving a PyTorch model exported to TorchScript",
    "cpu",
    mlgen.Resources(cpu_request="500m", memory_request="1Gi", cpu_limit="2", memory_limit="2Gi"),
)
GPU_BACKEND = _backend(
    "torchserve-gpu",
    "TorchServe on one NVIDIA GPU serving a PyTorch model exported to TorchScript",
    "gpu",
    mlgen.Resources(
        cpu_request="1", memory_request="2Gi", cpu_limit="4", memory_limit="8Gi", gpus=1
    ),
)
BACKENDS = {backend.name: backend for backend in (BACKEND, GPU_BACKEND)}


@mlgen.hookimpl
def mlgen_register_backends(register: Callable[[mlgen.Backend], None]) -> None:
    """Register the TorchServe backends (CPU and GPU)."""
    for backend in BACKENDS.values():
        register(backend)


@mlgen.hookimpl
def mlgen_register_checks(
    register: Callable[[mlgen.Check], None], repo: Path, answers: Mapping[str, Any]
) -> None:
    """Validate the TorchServe configuration and archive of a repository using it."""
    backend = BACKENDS.get(str(answers.get("serving_backend")))
    if backend is None:
        return
    for check in _checks.checks(repo, answers, backend.container):
        register(check)
