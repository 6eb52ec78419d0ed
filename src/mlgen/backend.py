"""The serving-backend object a plugin registers, and the container spec it carries.

A backend is plain data: its name, what it serves, the files it contributes to a
generated repository and how its container runs. Behaviour that differs between backends
lives in the files it contributes (rendered into the generated repository), never in the
mlgen core.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ExportFormat = str
"""The name of a model format a backend serves: lower-case letters, digits, ``-``, ``_``.

The template ships a modeling module (``src/<package>/modeling.py``) for each of
:data:`EXPORT_FORMATS`; a backend that serves another format registers it simply by
naming it and contributing its own ``src/{{ package_name }}/modeling.py.jinja``.
"""
EXPORT_FORMATS: tuple[str, ...] = ("onnx", "torchscript", "savedmodel")
"""The formats the template has a modeling module for (scikit-learn to ONNX, PyTorch to
TorchScript, Keras to a TensorFlow SavedModel)."""
EXPORT_FORMAT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")
"""What an export format name may be."""

BACKEND_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")
"""What a backend name may be (it is an answer value and an entry-point name)."""
_PORT_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,13}[a-z0-9])?$")  # Kubernetes IANA_SVC_NAME


class BackendDefinitionError(ValueError):
    """A backend object is inconsistent (raised while the plugin registers it)."""


@dataclass(frozen=True)
class Port:
    """A port the serving container listens on. ``name`` is what probes refer to."""

    name: str
    container_port: int
    protocol: Literal["TCP", "UDP"] = "TCP"

    def __post_init__(self) -> None:
        if not _PORT_NAME.match(self.name):
            raise BackendDefinitionError(
                f"port name {self.name!r} must be a Kubernetes port name "
                "(lower-case letters, digits and '-', at most 15 characters)"
            )
        if not 1 <= self.container_port <= 65535:
            raise BackendDefinitionError(
                f"port {self.name!r}: {self.container_port} is not 1-65535"
            )


@dataclass(frozen=True)
class Probe:
    """An HTTP probe on one of the container's named ports.

    ``{model_name}`` in ``path`` is replaced by the repository's ``model_name`` answer
    (TF Serving's REST paths name the model: ``/v1/models/{model_name}/metadata``).
    """

    path: str
    port: str
    initial_delay_seconds: int = 5
    period_seconds: int = 10
    timeout_seconds: int = 2
    failure_threshold: int = 3

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise BackendDefinitionError(f"probe path {self.path!r} must start with '/'")


@dataclass(frozen=True)
class Resources:
    """Kubernetes resource defaults; ``gpus`` > 0 requests ``nvidia.com/gpu``."""

    cpu_request: str = "250m"
    memory_request: str = "512Mi"
    cpu_limit: str = "1"
    memory_limit: str = "1Gi"
    gpus: int = 0


@dataclass(frozen=True)
class MetricQueries:
    """PromQL over the backend's own serving metrics, for alerts and dashboards.

    ``{selector}`` is replaced by the label matchers of one model's pods (for example
    ``namespace="ml", app="churn"``) and ``{window}`` by a range such as ``5m``;
    ``latency_quantile`` also has ``{quantile}`` (e.g. ``0.95``) and must give seconds.
    """

    request_rate: str
    error_rate: str
    latency_quantile: str

    def __post_init__(self) -> None:
        for name in ("request_rate", "error_rate", "latency_quantile"):
            if "{selector}" not in getattr(self, name):
                raise BackendDefinitionError(f"metric query {name} must contain {{selector}}")
        if "{quantile}" not in self.latency_quantile:
            raise BackendDefinitionError("metric query latency_quantile must contain {quantile}")


@dataclass(frozen=True)
class ContainerSpec:
    """How the serving container runs: image, command, ports, probes and resources.

    ``base_image`` is the image the Dockerfile builds on (pinned by the plugin);
    ``metrics_port`` names the port Prometheus scrapes (``None``: no metrics).
    """

    base_image: str
    command: tuple[str, ...]
    ports: tuple[Port, ...]
    readiness: Probe
    liveness: Probe
    resources: Resources = field(default_factory=Resources)
    metrics_port: str | None = None
    metrics_path: str = "/metrics"

    def __post_init__(self) -> None:
        names = [port.name for port in self.ports]
        if not names:
            raise BackendDefinitionError("a container spec needs at least one port")
        if len(set(names)) != len(names):
            raise BackendDefinitionError(f"port names must be unique, got {names}")
        for what, probe in (("readiness", self.readiness), ("liveness", self.liveness)):
            if probe.port not in names:
                raise BackendDefinitionError(
                    f"{what} probe uses port {probe.port!r}, which is not one of {names}"
                )
        if self.metrics_port is not None and self.metrics_port not in names:
            raise BackendDefinitionError(
                f"metrics_port {self.metrics_port!r} is not one of the ports {names}"
            )

    def port(self, name: str) -> Port:
        """Return the port called ``name``."""
        return next(port for port in self.ports if port.name == name)


@dataclass(frozen=True)
class Backend:
    """A serving backend, registered by a plugin through ``mlgen_register_backends``.

    Attributes:
        name: the value of the ``serving_backend`` answer that selects this backend.
        description: one line shown by ``mlgen backends`` and in the copier question.
        export_format: the model format the backend serves; the template's modeling
            module for it is used unless the backend contributes its own
            ``src/{{ package_name }}/modeling.py.jinja`` (required for a format not in
            :data:`EXPORT_FORMATS`).
        templates_package: the importable package that holds the backend's file templates.
        templates_dir: the folder inside ``templates_package`` with the templates; each
            file's path below it is its path in the generated repository (rendered with
            Jinja, so ``{{ package_name }}`` works; a ``.jinja`` suffix is dropped).
        container: how the serving container runs.
        smoke_test: the command, run in the generated repository, that trains, exports,
            serves and predicts once (``{package_name}`` is replaced).
        metrics: PromQL over the backend's serving metrics (alerts, dashboards).
        dependencies: requirements added to the generated repository's runtime deps.
        dev_dependencies: requirements added to its ``dev`` extra.
        runtime_extras: extras of ``mlgen-runtime`` the backend's files import (for
            example ``("serving", "onnx")``); the template pins the runtime once, with
            the union of every extra the repository needs.
    """

    name: str
    description: str
    export_format: ExportFormat
    templates_package: str
    container: ContainerSpec
    smoke_test: tuple[str, ...]
    metrics: MetricQueries
    templates_dir: str = "files"
    dependencies: tuple[str, ...] = ()
    dev_dependencies: tuple[str, ...] = ()
    runtime_extras: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not BACKEND_NAME.match(self.name):
            raise BackendDefinitionError(
                f"backend name {self.name!r} must be lower-case letters, digits, '-' or '_', "
                "starting with a letter"
            )
        if not isinstance(self.export_format, str) or not EXPORT_FORMAT_NAME.match(
            self.export_format
        ):
            raise BackendDefinitionError(
                f"backend {self.name!r}: export_format {self.export_format!r} must be a "
                "lower-case name (letters, digits, '-' or '_'), such as "
                f"{', '.join(EXPORT_FORMATS)}"
            )
        if "\n" in self.description or not self.description.strip():
            raise BackendDefinitionError(f"backend {self.name!r}: description must be one line")
        if not self.smoke_test:
            raise BackendDefinitionError(f"backend {self.name!r}: smoke_test is empty")

    def smoke_command(self, package_name: str) -> list[str]:
        """The smoke-test command for a repository whose package is ``package_name``."""
        return [part.replace("{package_name}", package_name) for part in self.smoke_test]

    def as_template_data(self) -> dict[str, Any]:
        """The backend as plain data, as templates see it (``mlgen_backend(name)``)."""
        return asdict(self)
