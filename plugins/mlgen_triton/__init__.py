"""NVIDIA Triton Inference Server backend for mlgen (ONNX Runtime backend of Triton).

Written exactly as a third-party plugin is: it is named by an entry point in the
``mlgen`` group and uses only the public ``mlgen`` API.

Two backends share one set of file templates:

* ``triton``: the model runs on CPU instances (``instance_group { kind: KIND_CPU }``);
* ``triton-gpu``: one GPU per pod (``nvidia.com/gpu: 1``, ``kind: KIND_GPU``).

The generated repository commits ``model_repository/<model_name>/config.pbtxt``;
training writes ``artifacts/model.onnx`` and the serving code assembles the Triton model
repository from both. ``mlgen check`` validates the config with Triton's own
``inference.ModelConfig`` protobuf and against the ONNX graph of a freshly trained model
(see :mod:`mlgen_triton.checks`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import mlgen

from .checks import triton_checks

MLGEN_PLUGIN_API = 1

TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:26.10-py3"
"""The official Triton image (NGC), pinned by release tag; its ONNX Runtime backend serves
the model. ``-py3`` is the full image with the python backend and ``python3``."""

HTTP_PORT = 8000
GRPC_PORT = 8001
METRICS_PORT = 8002
MODEL_REPOSITORY = "/models"

# Triton has no request-latency histogram for non-decoupled models (its only histogram,
# nv_inference_first_response_histogram_ms, is for decoupled models); the latency
# quantiles come from its summaries, enabled by `--metrics-config=summary_latencies=true`
# (default quantiles 0.5, 0.9, 0.95, 0.99, 0.999, over Triton's sliding window).
SERVER_COMMAND: tuple[str, ...] = (
    "tritonserver",
    f"--model-repository={MODEL_REPOSITORY}",
    "--model-control-mode=none",
    "--disable-auto-complete-config",
    "--strict-readiness=true",
    "--exit-on-error=true",
    f"--http-port={HTTP_PORT}",
    f"--grpc-port={GRPC_PORT}",
    f"--metrics-port={METRICS_PORT}",
    "--allow-metrics=true",
    "--metrics-config=summary_latencies=true",
    "--log-format=ISO8601",
)

METRICS = mlgen.MetricQueries(
    # Every inference request Triton answered, successful or not. (Two sums: one rate()
    # over both names would collapse each pod's pair into one label set, an error.)
    request_rate=(
        "sum(rate(nv_inference_request_success{{selector}}[{window}]))"
        " + sum(rate(nv_inference_request_failure{{selector}}[{window}]))"
    ),
    error_rate="sum(rate(nv_inference_request_failure{{selector}}[{window}]))",
    # Triton's summaries give each pod's quantile over its own sliding window (about a
    # minute), sampled at every scrape. Over {window}: the same quantile of those samples,
    # then the slowest pod (summary quantiles cannot be aggregated across pods). An
    # approximation of the window's quantile, on the pessimistic side.
    latency_quantile=(
        "max(quantile_over_time({quantile}, nv_inference_request_summary_us"
        '{{selector}, quantile="{quantile}"}[{window}])) / 1e6'
    ),
)

DEPENDENCIES = (
    "skl2onnx>=1.17",
    "onnx>=1.16",
    "onnxruntime>=1.18",
    # The client (HTTP) and Triton's ModelConfig protobuf (grpc extra) for validation.
    "tritonclient[http,grpc]>=2.45",
)
DEV_DEPENDENCIES = (
    # A tritonserver binary (python backend only, CPU) for the local end-to-end tests.
    # Linux wheels only; 0.5.x is the newest line (stubs for Python 3.8 to 3.12).
    "nvidia-pytriton>=0.5.7,<0.6; sys_platform == 'linux'",
)


def _container(resources: mlgen.Resources) -> mlgen.ContainerSpec:
    return mlgen.ContainerSpec(
        base_image=TRITON_IMAGE,
        command=SERVER_COMMAND,
        ports=(
            mlgen.Port("http", HTTP_PORT),
            mlgen.Port("grpc", GRPC_PORT),
            mlgen.Port("metrics", METRICS_PORT),
        ),
        # Ready (strict readiness) once every model in the repository is loaded.
        readiness=mlgen.Probe(
            "/v2/health/ready", "http", initial_delay_seconds=5, period_seconds=5
        ),
        liveness=mlgen.Probe(
            "/v2/health/live", "http", initial_delay_seconds=15, period_seconds=10
        ),
        resources=resources,
        metrics_port="metrics",
        metrics_path="/metrics",
    )


def _backend(name: str, description: str, resources: mlgen.Resources) -> mlgen.Backend:
    return mlgen.Backend(
        name=name,
        description=description,
        export_format="onnx",
        templates_package=__name__,
        templates_dir="files",
        container=_container(resources),
        smoke_test=("python", "-m", "{package_name}.serving.smoke"),
        metrics=METRICS,
        dependencies=DEPENDENCIES,
        dev_dependencies=DEV_DEPENDENCIES,
        # serving/model_repository.py builds on mlgen_runtime.backends.triton_config.
        runtime_extras=("triton",),
    )


BACKEND = _backend(
    "triton",
    "NVIDIA Triton Inference Server (ONNX Runtime backend, CPU instances) "
    "serving a scikit-learn model exported to ONNX",
    mlgen.Resources(cpu_request="500m", memory_request="1Gi", cpu_limit="2", memory_limit="2Gi"),
)
GPU_BACKEND = _backend(
    "triton-gpu",
    "NVIDIA Triton Inference Server (ONNX Runtime backend) on one GPU per pod "
    "serving a scikit-learn model exported to ONNX",
    mlgen.Resources(
        cpu_request="1", memory_request="2Gi", cpu_limit="4", memory_limit="8Gi", gpus=1
    ),
)
BACKENDS = (BACKEND, GPU_BACKEND)
BACKEND_NAMES = frozenset(backend.name for backend in BACKENDS)
PREPARED_MARKER = "triton-models/.mlgen-complete"
"""What ``triton_local.prepare_model_environment`` leaves when it completed."""


@mlgen.hookimpl
def mlgen_register_backends(register: Callable[[mlgen.Backend], None]) -> None:
    """Register the Triton backends (CPU and one-GPU)."""
    for backend in BACKENDS:
        register(backend)


@mlgen.hookimpl
def mlgen_prepare_environment(environment: Path, answers: Mapping[str, Any]) -> None:
    """Give the local tritonserver its models' environment (numpy 1, which its
    python-backend stub reads string tensors with; see
    ``mlgen_runtime.backends.triton_local``), once per environment that has the server."""
    if answers.get("serving_backend") not in BACKEND_NAMES:
        return
    python = environment / "bin" / "python"
    site = list((environment / "lib").glob("python3*/site-packages/pytriton"))
    if not python.exists() or not site or (environment / PREPARED_MARKER).is_file():
        return
    result = subprocess.run(
        [str(python), "-m", "mlgen_runtime.backends.triton_local", "prepare"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(
            "preparing the local tritonserver's models' environment failed: "
            + (result.stderr or result.stdout).strip()
        )


@mlgen.hookimpl
def mlgen_register_checks(
    register: Callable[[mlgen.Check], None], repo: Path, answers: Mapping[str, Any]
) -> None:
    """Validate the Triton model configuration of a repository that uses this backend."""
    if answers.get("serving_backend") not in BACKEND_NAMES:
        return
    for check in triton_checks(repo, answers):
        register(check)
