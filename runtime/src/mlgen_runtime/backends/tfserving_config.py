"""TF Serving's configuration files, read with TF Serving's own schemas.

* ``models.config``: a ``ModelServerConfig`` (``tensorflow_serving.config.
  model_server_config_pb2``, from the tensorflow-serving-api package): the model's name,
  ``base_path`` in the image, platform and version policy.
* ``monitoring.config``: a ``MonitoringConfig``: Prometheus on, and its path.
* ``batching.config``: the ``BatchingParameters`` of ``--enable_batching``.

tensorflow-serving-api ships no Python module for the last two messages, so they are
built here from TF Serving's ``monitoring_config.proto`` and the ``BatchingParameters``
message of ``session_bundle_config.proto`` (transcribed in :data:`_TRANSCRIBED`). Parsing
is protobuf's text format, as in the server: an unknown field or a syntax error is an
error, with its line and column. Needs ``tensorflow-serving-api`` (which brings
``protobuf``), imported inside the functions that use it.

Usage (a repository's ``serving/config.py`` names its model and folder)::

    from mlgen_runtime.backends import tfserving_config

    found = tfserving_config.problems(Path("tfserving"), "churn")  # [] when all is well
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from typing import Any

MODELS_CONFIG = "models.config"
MONITORING_CONFIG = "monitoring.config"
BATCHING_CONFIG = "batching.config"
IMAGE_MODELS_DIR = "/models"
"""Where the image holds the config files and ``<model>/<version>/`` folders."""
PLATFORM = "tensorflow"
METRICS_PATH = "/monitoring/prometheus/metrics"
"""The Prometheus path the Kubernetes scrape annotations name."""

# (message, ((field, number, label, type), ...)), package tensorflow.serving, proto3.
_TRANSCRIBED: tuple[tuple[str, tuple[tuple[str, int, str, str], ...]], ...] = (
    ("PrometheusConfig", (("enable", 1, "optional", "bool"), ("path", 2, "optional", "string"))),
    (
        "MonitoringConfig",
        (("prometheus_config", 1, "optional", ".tensorflow.serving.PrometheusConfig"),),
    ),
    (
        "BatchingParameters",
        (
            ("max_batch_size", 1, "optional", ".google.protobuf.Int64Value"),
            ("batch_timeout_micros", 2, "optional", ".google.protobuf.Int64Value"),
            ("max_enqueued_batches", 3, "optional", ".google.protobuf.Int64Value"),
            ("num_batch_threads", 4, "optional", ".google.protobuf.Int64Value"),
            ("thread_pool_name", 5, "optional", ".google.protobuf.StringValue"),
            ("allowed_batch_sizes", 6, "repeated", "int64"),
            ("pad_variable_length_inputs", 7, "optional", "bool"),
            ("enable_large_batch_splitting", 8, "optional", ".google.protobuf.BoolValue"),
            ("max_execution_batch_size", 9, "optional", ".google.protobuf.Int64Value"),
        ),
    ),
)


class ConfigError(ValueError):
    """A configuration file cannot be read or does not fit the deployment."""


@cache
def _transcribed_classes() -> dict[str, Any]:
    from google.protobuf import (
        descriptor_pb2,
        descriptor_pool,
        message_factory,
        wrappers_pb2,
    )

    field = descriptor_pb2.FieldDescriptorProto
    scalars = {"bool": field.TYPE_BOOL, "string": field.TYPE_STRING, "int64": field.TYPE_INT64}
    labels = {"optional": field.LABEL_OPTIONAL, "repeated": field.LABEL_REPEATED}
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    schema = descriptor_pb2.FileDescriptorProto(
        name="mlgen_runtime/tfserving_transcribed.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=[wrappers.name],
    )
    for message_name, fields in _TRANSCRIBED:
        message = schema.message_type.add(name=message_name)
        for name, number, label, kind in fields:
            entry = message.field.add(name=name, number=number, label=labels[label])
            if kind in scalars:
                entry.type = scalars[kind]
            else:
                entry.type, entry.type_name = field.TYPE_MESSAGE, kind
    pool.Add(schema)
    return {
        name: message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"tensorflow.serving.{name}")
        )
        for name in ("MonitoringConfig", "BatchingParameters")
    }


def _parse(path: Path, message: Any) -> Any:
    from google.protobuf import text_format

    try:
        return text_format.Parse(path.read_text(encoding="utf-8"), message)
    except text_format.ParseError as error:
        raise ConfigError(f"{path.name}:{error}") from None
    except OSError as error:
        raise ConfigError(f"{path}: {error}") from None


def read_model_server_config(path: Path) -> Any:
    """``models.config`` as a ``ModelServerConfig``; :class:`ConfigError` if it does not parse."""
    from tensorflow_serving.config import model_server_config_pb2

    return _parse(path, model_server_config_pb2.ModelServerConfig())


def read_monitoring_config(path: Path) -> Any:
    """``monitoring.config`` as a ``MonitoringConfig``."""
    return _parse(path, _transcribed_classes()["MonitoringConfig"]())


def read_batching_parameters(path: Path) -> Any:
    """``batching.config`` as ``BatchingParameters``."""
    return _parse(path, _transcribed_classes()["BatchingParameters"]())


# ------------------------------------------------------------------ what the server needs
def served_model(config: Any, model_name: str) -> Any:
    """The ``ModelConfig`` of ``model_name``: the only model, served the way the image expects.

    Raises:
        ConfigError: another layout, base path, platform or a missing version policy.
    """
    if config.WhichOneof("config") != "model_config_list":
        raise ConfigError(f"{MODELS_CONFIG}: needs a model_config_list")
    models = list(config.model_config_list.config)
    if [model.name for model in models] != [model_name]:
        raise ConfigError(
            f"{MODELS_CONFIG}: must serve exactly {model_name!r}, "
            f"found {[model.name for model in models]}"
        )
    (model,) = models
    if model.base_path != f"{IMAGE_MODELS_DIR}/{model_name}":
        raise ConfigError(
            f"{MODELS_CONFIG}: base_path must be {IMAGE_MODELS_DIR}/{model_name} (where the "
            f"image holds the versions), got {model.base_path!r}"
        )
    if model.model_platform != PLATFORM:
        raise ConfigError(
            f"{MODELS_CONFIG}: model_platform must be {PLATFORM!r} for a SavedModel, "
            f"got {model.model_platform!r}"
        )
    policy = model.model_version_policy.WhichOneof("policy_choice")
    if policy is None:
        raise ConfigError(f"{MODELS_CONFIG}: set a model_version_policy")
    if policy == "latest" and model.model_version_policy.latest.num_versions < 1:
        raise ConfigError(f"{MODELS_CONFIG}: latest.num_versions must be at least 1")
    if policy == "specific" and not model.model_version_policy.specific.versions:
        raise ConfigError(f"{MODELS_CONFIG}: specific lists no version")
    return model


def versions_to_serve(model: Any, base_path: Path) -> list[int]:
    """The version folders under ``base_path`` that ``model``'s version policy serves."""
    present = (
        sorted(
            int(child.name)
            for child in base_path.iterdir()
            if child.is_dir() and child.name.isdigit()
        )
        if base_path.is_dir()
        else []
    )
    policy = model.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "specific":
        return [version for version in present if version in set(policy.specific.versions)]
    if choice == "latest":
        return present[-policy.latest.num_versions :]
    return present


def check_monitoring(config: Any, metrics_path: str = METRICS_PATH) -> None:
    """Prometheus must be on, at ``metrics_path`` (what Kubernetes scrapes)."""
    prometheus = config.prometheus_config
    if not config.HasField("prometheus_config") or not prometheus.enable:
        raise ConfigError(f"{MONITORING_CONFIG}: prometheus_config must have enable: true")
    path = prometheus.path or "/monitoring/prometheus/metrics"
    if path != metrics_path:
        raise ConfigError(
            f"{MONITORING_CONFIG}: path is {path!r}, Prometheus scrapes {metrics_path!r}"
        )


def check_batching(params: Any) -> None:
    """The constraints TF Serving documents for ``BatchingParameters``."""
    for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
        if params.HasField(name) and getattr(params, name).value < 1:
            raise ConfigError(f"{BATCHING_CONFIG}: {name} must be at least 1")
    if params.HasField("batch_timeout_micros") and params.batch_timeout_micros.value < 0:
        raise ConfigError(f"{BATCHING_CONFIG}: batch_timeout_micros must not be negative")
    sizes = list(params.allowed_batch_sizes)
    if sizes and (
        sizes != sorted(set(sizes))
        or sizes[0] < 1
        or (params.HasField("max_batch_size") and sizes[-1] != params.max_batch_size.value)
    ):
        raise ConfigError(
            f"{BATCHING_CONFIG}: allowed_batch_sizes must increase and end at max_batch_size"
        )


def problems(directory: Path, model_name: str, metrics_path: str = METRICS_PATH) -> list[str]:
    """Every problem of the three files in ``directory`` for ``model_name``, scraped at
    ``metrics_path``."""
    steps: tuple[tuple[str, Any, Any], ...] = (
        (MODELS_CONFIG, read_model_server_config, lambda c: served_model(c, model_name)),
        (MONITORING_CONFIG, read_monitoring_config, lambda c: check_monitoring(c, metrics_path)),
        (BATCHING_CONFIG, read_batching_parameters, check_batching),
    )
    found = []
    for name, read, check in steps:
        try:
            check(read(directory / name))
        except ConfigError as error:
            found.append(str(error))
    return found


def main(
    argv: list[str] | None, model_name: str, default_dir: Path, metrics_path: str = METRICS_PATH
) -> int:
    """A repository's ``python -m <package>.serving.config [DIR]``: check ``DIR`` (default
    ``default_dir``), print each problem; exit 1 on a problem."""
    arguments = sys.argv[1:] if argv is None else argv
    directory = Path(arguments[0]) if arguments else default_dir
    found = problems(directory, model_name, metrics_path)
    for problem in found:
        print(f"problem: {problem}", file=sys.stderr)
    if not found:
        print(
            f"ok: {directory}: {MODELS_CONFIG}, {MONITORING_CONFIG} and "
            f"{BATCHING_CONFIG} parse with TF Serving's schemas and fit the image"
        )
    return 1 if found else 0
