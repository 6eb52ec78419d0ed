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
_VOLUME_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")  # a DNS-1123 label
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
KUSTOMIZE_PATCH_FOLDERS = ("deploy/k8s/base", "deploy/k8s/base/deployment")
"""Where a backend's kustomize patches may live: the kustomization in that folder lists
them. Patches of the Deployment belong in ``deploy/k8s/base/deployment`` (the canary track
and the Argo Rollout reuse that Deployment), patches of other base objects in
``deploy/k8s/base``."""


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
class EnvVar:
    """An environment variable of the serving container (Kubernetes ``env``).

    ``{model_name}`` and ``{package_name}`` in ``value`` are replaced by the answers.
    """

    name: str
    value: str

    def __post_init__(self) -> None:
        if not _ENV_NAME.match(self.name):
            raise BackendDefinitionError(
                f"environment variable name {self.name!r} must be letters, digits and '_', "
                "not starting with a digit"
            )
        if not isinstance(self.value, str):
            raise BackendDefinitionError(f"environment variable {self.name}: value must be a str")


@dataclass(frozen=True)
class Volume:
    """An ``emptyDir`` volume mounted into the serving container.

    ``medium="Memory"`` makes it a tmpfs (``/dev/shm`` for runtimes that share memory
    between processes: Ray's object store, PyTorch data loaders); ``size_limit`` is a
    Kubernetes quantity (``"1Gi"``), counted against the container's memory limit when
    the medium is ``Memory``. ``/tmp`` is not a volume of the backend: it is always
    mounted (the root filesystem is read-only), sized by ``ContainerSpec.tmp_size_limit``.
    """

    name: str
    mount_path: str
    size_limit: str | None = None
    medium: Literal["", "Memory"] = ""

    def __post_init__(self) -> None:
        if not _VOLUME_NAME.match(self.name) or self.name == "tmp":
            raise BackendDefinitionError(
                f"volume name {self.name!r} must be a DNS label (lower-case letters, digits, "
                "'-') other than 'tmp'"
            )
        if not self.mount_path.startswith("/") or self.mount_path.rstrip("/") == "/tmp":
            raise BackendDefinitionError(
                f"volume {self.name!r}: mount_path {self.mount_path!r} must be absolute and "
                "not /tmp (size /tmp with ContainerSpec.tmp_size_limit)"
            )
        if self.size_limit is not None and not _QUANTITY.match(self.size_limit):
            raise BackendDefinitionError(
                f"volume {self.name!r}: size_limit {self.size_limit!r} is not a quantity "
                "such as 512Mi or 1Gi"
            )
        if self.medium not in ("", "Memory"):
            raise BackendDefinitionError(
                f"volume {self.name!r}: medium must be '' (node disk) or 'Memory'"
            )


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
    ``startup`` is a Kubernetes startup probe: until it passes, readiness and liveness
    are not probed, so a server that takes long to start (Ray Serve: about a minute)
    is not restarted while it starts; its budget is ``initial_delay_seconds +
    period_seconds * failure_threshold``. ``env`` are the container's environment
    variables, ``volumes`` its extra ``emptyDir`` volumes and ``tmp_size_limit`` the
    size of the ``/tmp`` volume every container gets.
    """

    base_image: str
    command: tuple[str, ...]
    ports: tuple[Port, ...]
    readiness: Probe
    liveness: Probe
    resources: Resources = field(default_factory=Resources)
    metrics_port: str | None = None
    metrics_path: str = "/metrics"
    startup: Probe | None = None
    env: tuple[EnvVar, ...] = ()
    volumes: tuple[Volume, ...] = ()
    tmp_size_limit: str = "256Mi"

    def __post_init__(self) -> None:
        names = [port.name for port in self.ports]
        if not names:
            raise BackendDefinitionError("a container spec needs at least one port")
        if len(set(names)) != len(names):
            raise BackendDefinitionError(f"port names must be unique, got {names}")
        for what, probe in self.probes():
            if probe.port not in names:
                raise BackendDefinitionError(
                    f"{what} probe uses port {probe.port!r}, which is not one of {names}"
                )
        if self.metrics_port is not None and self.metrics_port not in names:
            raise BackendDefinitionError(
                f"metrics_port {self.metrics_port!r} is not one of the ports {names}"
            )
        _unique("environment variable", [variable.name for variable in self.env])
        _unique("volume name", [volume.name for volume in self.volumes])
        _unique("volume mount_path", [volume.mount_path for volume in self.volumes])
        if not _QUANTITY.match(self.tmp_size_limit):
            raise BackendDefinitionError(
                f"tmp_size_limit {self.tmp_size_limit!r} is not a quantity such as 256Mi"
            )

    def probes(self) -> list[tuple[str, Probe]]:
        """``(kind, probe)`` for each declared probe: startup (if any), readiness, liveness."""
        probes = [("readiness", self.readiness), ("liveness", self.liveness)]
        return [("startup", self.startup), *probes] if self.startup else probes

    def start_period_seconds(self) -> int:
        """How long the container may take to start: the startup probe's whole budget,
        else the liveness probe's initial delay (the Dockerfile's ``HEALTHCHECK
        --start-period``)."""
        if self.startup is None:
            return self.liveness.initial_delay_seconds
        startup = self.startup
        return startup.initial_delay_seconds + startup.period_seconds * startup.failure_threshold

    def port(self, name: str) -> Port:
        """Return the port called ``name``."""
        return next(port for port in self.ports if port.name == name)


def _unique(what: str, values: list[str]) -> None:
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise BackendDefinitionError(f"{what}s must be unique, got {', '.join(repeated)} twice")


@dataclass(frozen=True)
class ContractTimeouts:
    """How long ``mlgen.testing.BackendContract`` lets the backend's slow steps take.

    ``smoke_seconds`` bounds the smoke test (``Backend.smoke_test``), ``export_seconds``
    the training-and-export probe. A step that runs longer is killed and fails. Raise
    them for a runtime that starts slowly (Ray Serve starts in about a minute on 2 cores,
    more on a loaded machine).
    """

    smoke_seconds: float = 900
    export_seconds: float = 600

    def __post_init__(self) -> None:
        for name in ("smoke_seconds", "export_seconds"):
            if not getattr(self, name) > 0:
                raise BackendDefinitionError(f"contract timeout {name} must be positive")


@dataclass(frozen=True)
class Backend:
    """A serving backend, registered by a plugin through ``mlgen_register_backends``.

    Attributes:
        name: the value of the ``serving_backend`` answer that selects this backend.
        description: one line shown by ``mlgen backends`` and in the copier question.
        export_format: the model format the backend serves (its main one, when it serves
            several): the template's modeling module for it is used unless the backend
            contributes its own ``src/{{ package_name }}/modeling.py.jinja`` (required for
            a format not in :data:`EXPORT_FORMATS`). Its default model framework is the
            one the template exports this format from (:mod:`mlgen.frameworks`).
        export_formats: every format the backend serves (``export_format`` among them);
            empty, the default, means ``export_format`` alone (:meth:`served_formats`).
            The ``model_framework`` answer must export one of them
            (:func:`mlgen.frameworks.pair_problem`). Optional, so plugins written before
            it keep working.
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
        serving_dependencies: what the serving image installs beside the package
            (installed ``--no-deps``): the serving runtime only, no training
            dependencies. They are added to the repository's dependencies too, so its
            environment can serve (smoke test, tests).
        serving_runtime_extras: extras of ``mlgen-runtime`` the serving image needs (a
            subset of ``runtime_extras``: ``("serving",)`` without the training-side
            ``onnx``). Templates get the image's requirements from
            ``mlgen_serving_requirements()``.
        kustomize_patches: paths (in the generated repository) of kustomize patch files
            the backend contributes, each in one of :data:`KUSTOMIZE_PATCH_FOLDERS`;
            the kustomization of that folder lists them under ``patches:``.
        contract_timeouts: the contract suite's time limits for this backend.
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
    serving_dependencies: tuple[str, ...] = ()
    serving_runtime_extras: tuple[str, ...] = ()
    kustomize_patches: tuple[str, ...] = ()
    contract_timeouts: ContractTimeouts = field(default_factory=ContractTimeouts)
    export_formats: tuple[ExportFormat, ...] = ()

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
        for name in self.export_formats:
            if not isinstance(name, str) or not EXPORT_FORMAT_NAME.match(name):
                raise BackendDefinitionError(
                    f"backend {self.name!r}: export format {name!r} must be a lower-case name"
                )
        if self.export_formats and self.export_format not in self.export_formats:
            raise BackendDefinitionError(
                f"backend {self.name!r}: export_formats {list(self.export_formats)} must "
                f"include export_format {self.export_format!r}"
            )
        if "\n" in self.description or not self.description.strip():
            raise BackendDefinitionError(f"backend {self.name!r}: description must be one line")
        if not self.smoke_test:
            raise BackendDefinitionError(f"backend {self.name!r}: smoke_test is empty")
        for patch in self.kustomize_patches:
            folder, _, filename = patch.rpartition("/")
            if folder not in KUSTOMIZE_PATCH_FOLDERS or not filename.endswith((".yaml", ".yml")):
                raise BackendDefinitionError(
                    f"backend {self.name!r}: kustomize patch {patch!r} must be a .yaml file in "
                    f"{' or '.join(KUSTOMIZE_PATCH_FOLDERS)}"
                )
        _unique("kustomize patch path", list(self.kustomize_patches))
        unknown = sorted(set(self.serving_runtime_extras) - set(self.runtime_extras))
        if unknown:
            raise BackendDefinitionError(
                f"backend {self.name!r}: serving_runtime_extras {unknown} are not in "
                "runtime_extras (the repository's environment must have what the image has)"
            )

    def served_formats(self) -> tuple[ExportFormat, ...]:
        """Every format the backend serves, ``export_format`` first."""
        others = [name for name in self.export_formats if name != self.export_format]
        return (self.export_format, *dict.fromkeys(others))

    def smoke_command(self, package_name: str) -> list[str]:
        """The smoke-test command for a repository whose package is ``package_name``."""
        return [part.replace("{package_name}", package_name) for part in self.smoke_test]

    def serving_requirements(self, runtime_version: str) -> list[str]:
        """What the serving image installs: the runtime pin with the serving extras, then
        ``serving_dependencies``."""
        extras = ",".join(sorted(self.serving_runtime_extras))
        runtime = f"mlgen-runtime[{extras}]" if extras else "mlgen-runtime"
        return [f"{runtime}~={runtime_version}", *self.serving_dependencies]

    def as_template_data(self) -> dict[str, Any]:
        """The backend as plain data, as templates see it (``mlgen_backend(name)``).

        ``container.start_period_seconds`` is added
        (:meth:`ContainerSpec.start_period_seconds`: the Dockerfile's ``HEALTHCHECK
        --start-period``)."""
        data = asdict(self)
        data["container"]["start_period_seconds"] = self.container.start_period_seconds()
        return data
