"""FastAPI + ONNX Runtime serving backend for mlgen.

Written exactly as a third-party plugin is: it is named by an entry point in the
``mlgen`` group and uses only the public ``mlgen`` API.
"""

from __future__ import annotations

from collections.abc import Callable

import mlgen

MLGEN_PLUGIN_API = 1

HTTP_PORT = 8080

BACKEND = mlgen.Backend(
    name="fastapi",
    description="FastAPI + ONNX Runtime service for a model exported to ONNX",
    export_format="onnx",
    templates_package=__name__,
    templates_dir="files",
    container=mlgen.ContainerSpec(
        base_image="python:{python_version}-slim",
        command=(
            "uvicorn",
            "{package_name}.serving.app:app",
            "--host",
            "0.0.0.0",
            "--port",
            str(HTTP_PORT),
        ),
        ports=(mlgen.Port("http", HTTP_PORT),),
        readiness=mlgen.Probe("/ready", "http", initial_delay_seconds=2, period_seconds=5),
        liveness=mlgen.Probe("/health", "http", initial_delay_seconds=5, period_seconds=10),
        resources=mlgen.Resources(
            cpu_request="250m", memory_request="256Mi", cpu_limit="1", memory_limit="512Mi"
        ),
        metrics_port="http",
    ),
    smoke_test=("python", "-m", "{package_name}.serving.smoke"),
    metrics=mlgen.MetricQueries(
        request_rate='sum(rate(model_requests_total{{selector}, endpoint="/predict"}[{window}]))',
        error_rate=(
            'sum(rate(model_requests_total{{selector}, endpoint="/predict", status=~"5.."}'
            "[{window}]))"
        ),
        latency_quantile=(
            "histogram_quantile({quantile}, sum by (le) (rate(model_request_duration_seconds_"
            'bucket{{selector}, endpoint="/predict"}[{window}])))'
        ),
    ),
    # FastAPI, pydantic, prometheus-client, uvicorn (with uvloop and httptools) and ONNX
    # Runtime / skl2onnx come with the runtime's extras; the service is mlgen_runtime.serving.
    runtime_extras=("serving", "onnx"),
    dev_dependencies=("httpx>=0.27", "httpx2>=2.0", "schemathesis>=4.0"),
)


@mlgen.hookimpl
def mlgen_register_backends(register: Callable[[mlgen.Backend], None]) -> None:
    """Register the FastAPI backend."""
    register(BACKEND)
