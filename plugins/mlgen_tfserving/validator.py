"""Validators of a TF Serving repository, run with the generated repository's interpreter.

This file is executed as a script by ``mlgen check`` (see ``checks.py``) in the
repository's environment, which has TensorFlow, tensorflow-serving-api and mlgen-runtime;
it imports neither mlgen nor anything outside that environment. Commands::

    python validator.py config --dir tfserving --model-name NAME --metrics-path PATH
                        [--dockerfile Dockerfile --grpc-port 8500 --http-port 8501]
    python validator.py savedmodel PATH --package PKG
    python validator.py train --package PKG

Each prints one line per problem and a last line ``ok: ...`` (exit 0) or ``FAILED: ...``
(exit 1). Exit status 2 means the environment lacks a package.

* ``config`` reads ``models.config`` into TF Serving's own ``ModelServerConfig``
  (``tensorflow_serving.config.model_server_config_pb2``), ``monitoring.config`` into
  ``MonitoringConfig`` and ``batching.config`` into ``BatchingParameters``: the pip package
  ships no Python module for these two, so their message types are mlgen-runtime's
  (``mlgen_runtime.backends.tfserving_config``), transcribed from TF Serving's
  ``monitoring_config.proto`` and ``session_bundle_config.proto``. Text-format parsing
  is protobuf's, as in the server: unknown fields, wrong types and syntax errors are
  reported with line:column. Then what the server needs of the
  values, and (with ``--dockerfile``) that the server command names these files, ports and
  metrics path.
* ``savedmodel`` reads a SavedModel the way TF Serving does (the MetaGraph tagged
  ``serve`` and its ``serving_default`` SignatureDef: one ``[batch]`` input per feature
  of ``PKG.features``, DT_STRING for a category with string levels and DT_FLOAT for the
  others, a float32 ``probability`` output), reloads it with
  ``tf.saved_model.load``, checks the REST body ``PKG.serving.client`` builds against the
  signature, and calls the signature with it.
* ``train`` fits a small model with ``PKG.modeling``, exports it into a temporary folder,
  validates it like ``savedmodel`` and compares its probabilities with the in-process
  model's (within 1e-4).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

TOLERANCE = 1e-4
SIGNATURE = "serving_default"
SERVE_TAG = "serve"
PROBABILITY = "probability"
PLATFORM = "tensorflow"
CONFIG_FILES = ("models.config", "monitoring.config", "batching.config")


class MissingPackage(RuntimeError):
    """The environment lacks a package a validator needs."""


def _import(module: str, hint: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingPackage(f"cannot import {module} ({error}): {hint}") from None


# ------------------------------------------------------------------ schemas
def transcribed_messages() -> dict[str, type]:
    """``MonitoringConfig`` and ``BatchingParameters`` message classes: mlgen-runtime's
    transcription of TF Serving's protos (the repository depends on mlgen-runtime)."""
    config = _import(
        "mlgen_runtime.backends.tfserving_config", "install the repository's dependencies"
    )
    return dict(config.transcribed_messages())


def parse_text(path: Path, message: Any) -> tuple[Any, str | None]:
    """Parse ``path`` (protobuf text format) into ``message``; the error, if any."""
    from google.protobuf import text_format

    try:
        text_format.Parse(path.read_text(encoding="utf-8"), message)
    except text_format.ParseError as error:
        return message, f"{path.name}:{error}"
    except (OSError, UnicodeDecodeError) as error:
        return message, f"{path.name}: {error}"
    return message, None


# ------------------------------------------------------------------ config files
def model_server_config_problems(config: Any, model_name: str) -> list[str]:
    """What TF Serving needs of ``models.config`` to serve ``model_name`` from ``/models``."""
    where = "models.config"
    if config.WhichOneof("config") != "model_config_list":
        return [f"{where}: needs a model_config_list (custom_model_config is not supported)"]
    models = list(config.model_config_list.config)
    names = [model.name for model in models]
    if names != [model_name]:
        return [f"{where}: must configure exactly the model {model_name!r}, found {names}"]
    (model,) = models
    problems = []
    if model.base_path != f"/models/{model_name}":
        problems.append(
            f"{where}: base_path is {model.base_path!r}, the image holds the versions in "
            f"'/models/{model_name}'"
        )
    if model.model_platform != PLATFORM:
        problems.append(
            f"{where}: model_platform is {model.model_platform!r}, a SavedModel is "
            f"served by platform {PLATFORM!r}"
        )
    policy = model.model_version_policy
    chosen = policy.WhichOneof("policy_choice")
    if chosen is None:
        problems.append(f"{where}: set model_version_policy (latest, all or specific)")
    elif chosen == "latest" and policy.latest.num_versions < 1:
        problems.append(f"{where}: model_version_policy.latest.num_versions must be >= 1")
    elif chosen == "specific" and not list(policy.specific.versions):
        problems.append(f"{where}: model_version_policy.specific lists no version")
    for label, version in model.version_labels.items():
        if chosen == "specific" and version not in policy.specific.versions:
            problems.append(f"{where}: version label {label!r} names unserved version {version}")
    return problems


def monitoring_problems(config: Any, metrics_path: str) -> list[str]:
    """Prometheus must be enabled, at the path the deployment scrapes."""
    where = "monitoring.config"
    if not config.HasField("prometheus_config") or not config.prometheus_config.enable:
        return [f"{where}: prometheus_config {{ enable: true }} is needed for the metrics"]
    path = config.prometheus_config.path or "/monitoring/prometheus/metrics"
    if path != metrics_path:
        return [f"{where}: Prometheus path {path!r}, the deployment scrapes {metrics_path!r}"]
    return []


def batching_problems(params: Any) -> list[str]:
    """The constraints TF Serving documents for BatchingParameters."""
    where = "batching.config"
    problems = []
    for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
        if params.HasField(name) and getattr(params, name).value < 1:
            problems.append(f"{where}: {name} must be at least 1")
    if params.HasField("batch_timeout_micros") and params.batch_timeout_micros.value < 0:
        problems.append(f"{where}: batch_timeout_micros must not be negative")
    sizes = list(params.allowed_batch_sizes)
    if sizes:
        if sizes != sorted(set(sizes)) or sizes[0] < 1:
            problems.append(f"{where}: allowed_batch_sizes must be positive and increasing")
        if params.HasField("max_batch_size") and sizes[-1] != params.max_batch_size.value:
            problems.append(f"{where}: the last allowed_batch_sizes entry must be max_batch_size")
    return problems


def _entrypoint(dockerfile: Path) -> list[str] | None:
    """The exec-form ENTRYPOINT of the Dockerfile's last stage, or None."""
    found: list[str] | None = None
    logical = ""
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        keyword, _, rest = logical.strip().partition(" ")
        if keyword.upper() == "FROM":
            found = None
        elif keyword.upper() == "ENTRYPOINT":
            try:
                words = json.loads(rest)
            except json.JSONDecodeError:
                words = None
            found = [str(word) for word in words] if isinstance(words, list) else []
        logical = ""
    return found


def command_problems(
    dockerfile: Path, config_dir: Path, grpc_port: int, http_port: int
) -> list[str]:
    """The server command of the image names the config files the image copies, and the ports."""
    words = _entrypoint(dockerfile)
    if not words:
        return [f"{dockerfile.name}: no exec-form ENTRYPOINT running tensorflow_model_server"]
    if Path(words[0]).name != "tensorflow_model_server":
        return [f"{dockerfile.name}: ENTRYPOINT runs {words[0]!r}, not tensorflow_model_server"]
    flags: dict[str, str] = {}
    for word in words[1:]:
        if word.startswith("--"):
            name, _, value = word[2:].partition("=")
            flags[name] = value
    problems = []
    expected = {"port": str(grpc_port), "rest_api_port": str(http_port)}
    for flag, value in expected.items():
        if flags.get(flag) != value:
            problems.append(f"{dockerfile.name}: --{flag} is {flags.get(flag)!r}, expected {value}")
    copied = dockerfile.read_text(encoding="utf-8")
    wanted = {"model_config_file": "models.config", "monitoring_config_file": "monitoring.config"}
    if flags.get("enable_batching", "false").lower() in ("", "true", "1"):
        wanted["batching_parameters_file"] = "batching.config"
    for flag, name in wanted.items():
        given = flags.get(flag)
        if given != f"/models/{name}":
            problems.append(f"{dockerfile.name}: --{flag} is {given!r}, expected '/models/{name}'")
        elif f"{config_dir.name}/{name}" not in copied:
            problems.append(
                f"{dockerfile.name}: does not COPY {config_dir.name}/{name} to /models/"
            )
    return problems


def check_config(args: argparse.Namespace) -> tuple[list[str], str]:
    model_server_config_pb2 = _import(
        "tensorflow_serving.config.model_server_config_pb2",
        "install the repository's dependencies (tensorflow-serving-api)",
    )
    directory = Path(args.dir)
    missing = [name for name in CONFIG_FILES if not (directory / name).is_file()]
    if missing:
        return [f"{directory}: missing {', '.join(missing)}"], ""
    messages = transcribed_messages()
    problems: list[str] = []
    models, error = parse_text(
        directory / "models.config", model_server_config_pb2.ModelServerConfig()
    )
    problems += [error] if error else model_server_config_problems(models, args.model_name)
    monitoring, error = parse_text(directory / "monitoring.config", messages["MonitoringConfig"]())
    problems += [error] if error else monitoring_problems(monitoring, args.metrics_path)
    batching, error = parse_text(directory / "batching.config", messages["BatchingParameters"]())
    problems += [error] if error else batching_problems(batching)
    if args.dockerfile:
        problems += command_problems(
            Path(args.dockerfile), directory, args.grpc_port, args.http_port
        )
    summary = (
        f"ModelServerConfig serves {args.model_name!r} from /models/{args.model_name} "
        f"(platform {PLATFORM}); Prometheus at {args.metrics_path}; batching parameters valid"
    )
    return problems, summary


# ------------------------------------------------------------------ SavedModel
def saved_model_dir(path: Path, model_name: str | None = None) -> Path:
    """A SavedModel directory: ``path`` itself, or the highest numeric version below it."""
    if (path / "saved_model.pb").is_file():
        return path
    if model_name and (path / model_name).is_dir():
        path = path / model_name
    versions = (
        sorted(
            (int(child.name), child)
            for child in path.iterdir()
            if child.is_dir() and child.name.isdigit()
        )
        if path.is_dir()
        else []
    )
    if not versions:
        raise FileNotFoundError(f"{path}: no saved_model.pb, nor a numeric version folder")
    return versions[-1][1]


def signature_def_problems(
    directory: Path, feature_names: Sequence[str], strings: Iterable[str] = ()
) -> tuple[list[str], Any]:
    """Read ``saved_model.pb`` like TF Serving: the ``serve`` MetaGraph's SignatureDef."""
    saved_model_pb2 = _import("tensorflow.core.protobuf.saved_model_pb2", "install tensorflow")
    types_pb2 = _import("tensorflow.core.framework.types_pb2", "install tensorflow")
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((directory / "saved_model.pb").read_bytes())
    graphs = [graph for graph in saved.meta_graphs if SERVE_TAG in graph.meta_info_def.tags]
    if not graphs:
        return [f"{directory}: no MetaGraph tagged {SERVE_TAG!r} (TF Serving loads that one)"], None
    signatures = graphs[0].signature_def
    if SIGNATURE not in signatures:
        found = sorted(name for name in signatures if not name.startswith("__"))
        return [
            f"{directory}: no {SIGNATURE!r} signature (found {found}): TF "
            "Serving's REST and gRPC APIs use it when a request names none"
        ], None
    signature = signatures[SIGNATURE]
    problems = []
    inputs = dict(signature.inputs)
    if sorted(inputs) != sorted(feature_names):
        problems.append(
            f"{SIGNATURE} inputs are {sorted(inputs)}, the features are {sorted(feature_names)}"
        )
    strings = set(strings)
    for name, info in sorted(inputs.items()):
        dims = [dim.size for dim in info.tensor_shape.dim]
        dtype = types_pb2.DT_STRING if name in strings else types_pb2.DT_FLOAT
        if info.dtype != dtype or info.tensor_shape.unknown_rank or dims != [-1]:
            problems.append(
                f"{SIGNATURE} input {name!r} is {types_pb2.DataType.Name(info.dtype)} {dims}, "
                f"expected {types_pb2.DataType.Name(dtype)} [-1] (one value per example)"
            )
    outputs = dict(signature.outputs)
    if PROBABILITY not in outputs:
        problems.append(f"{SIGNATURE} has no {PROBABILITY!r} output (outputs: {sorted(outputs)})")
    elif outputs[PROBABILITY].dtype != types_pb2.DT_FLOAT:
        problems.append(f"{SIGNATURE} output {PROBABILITY!r} is not DT_FLOAT")
    return problems, signature


def rest_body_problems(body: Any, signature: Any, strings: Iterable[str] = ()) -> list[str]:
    """Problems of a REST ``:predict`` body (row format) against a SignatureDef: a string
    for the ``strings`` inputs, a number (NaN: a null, which the signature imputes) for
    the others, as TF Serving decodes JSON."""
    if not isinstance(body, Mapping):
        return ["the request body is not a JSON object"]
    problems = []
    unknown = sorted(set(body) - {"signature_name", "instances"})
    if unknown:
        problems.append(f"the body has unexpected keys {unknown} (row format: instances)")
    if body.get("signature_name", SIGNATURE) != SIGNATURE:
        problems.append(f"signature_name is {body.get('signature_name')!r}, not {SIGNATURE!r}")
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances:
        return [*problems, "instances must be a non-empty list"]
    names = sorted(signature.inputs)
    strings = set(strings)
    for index, instance in enumerate(instances):
        if not isinstance(instance, Mapping) or sorted(instance) != names:
            keys = sorted(instance) if isinstance(instance, Mapping) else type(instance).__name__
            problems.append(f"instance {index} has {keys}, the signature's inputs are {names}")
            continue
        for name, value in instance.items():
            if name in strings:
                if not isinstance(value, str):
                    problems.append(f"instance {index}: {name} is {value!r}, not a string")
            elif isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"instance {index}: {name} is {value!r}, not a number")
            elif math.isinf(value):
                problems.append(f"instance {index}: {name} is not finite")
    return problems


def call_signature(directory: Path, body: Mapping[str, Any], strings: Iterable[str] = ()) -> Any:
    """Reload with ``tf.saved_model.load`` and call the signature with the body's columns."""
    tf = _import("tensorflow", "install tensorflow")
    loaded = tf.saved_model.load(str(directory), tags=[SERVE_TAG])
    function = loaded.signatures[SIGNATURE]
    strings = set(strings)
    columns = {
        name: (
            tf.constant([str(instance[name]) for instance in body["instances"]], tf.string)
            if name in strings
            else tf.constant([float(instance[name]) for instance in body["instances"]], tf.float32)
        )
        for name in body["instances"][0]
    }
    outputs = function(**columns)
    return outputs[PROBABILITY].numpy().reshape(-1)


def _package_parts(package: str) -> tuple[Any, Any, Callable[[list[Mapping[str, float]]], Any]]:
    features = importlib.import_module(f"{package}.features")
    modeling = importlib.import_module(f"{package}.modeling")
    client = importlib.import_module(f"{package}.serving.client")
    return features, modeling, client.predict_request


def validate_saved_model(
    path: Path, package: str, expected: Callable[[Any], Any] | None = None
) -> tuple[list[str], str]:
    features, modeling, predict_request = _package_parts(package)
    strings = sorted(getattr(modeling, "STRING_FEATURES", ()))
    model_name = importlib.import_module(package).MODEL_NAME
    try:
        directory = saved_model_dir(path, model_name)
    except FileNotFoundError as error:
        return [str(error)], ""
    problems, signature = signature_def_problems(directory, features.FEATURE_NAMES, strings)
    if signature is None or problems:
        return problems, ""
    rows = _sample_rows(features)
    body = predict_request(rows)
    problems = rest_body_problems(body, signature, strings)
    if problems:
        return [f"REST body built by {package}.serving.client: {p}" for p in problems], ""
    probabilities = call_signature(directory, body, strings)
    if (
        probabilities.shape != (len(rows),)
        or not ((probabilities >= 0) & (probabilities <= 1)).all()
    ):
        return [f"{SIGNATURE} returned {probabilities!r}, not {len(rows)} probabilities"], ""
    detail = ""
    if expected is not None:
        reference = expected(features.to_matrix(rows))
        difference = float(
            max(abs(float(a) - float(b)) for a, b in zip(probabilities, reference, strict=True))
        )
        if not difference <= TOLERANCE:
            return [
                f"the SavedModel's probabilities differ from the in-process model's by "
                f"{difference:.2e} (tolerance {TOLERANCE:.0e})"
            ], ""
        detail = f", equal to the in-process model's (|diff| {difference:.1e})"
    numbers = len(signature.inputs) - len(strings)
    kinds = f"{len(strings)} string, {numbers} float32" if strings else "float32"
    summary = (
        f"{directory.parent.name}/{directory.name}: MetaGraph {SERVE_TAG!r}, {SIGNATURE} "
        f"takes the {len(signature.inputs)} features ({kinds} [batch]) and returns "
        f"{', '.join(sorted(signature.outputs))}; the client's REST body feeds it{detail}"
    )
    return [], summary


def _sample_rows(features: Any) -> list[Mapping[str, Any]]:
    """The example row, a few in-range variations of it and (when the schema has nullable
    features) the example with every nullable feature null."""
    base = dict(features.example_row())
    rows: list[Mapping[str, Any]] = [base]
    nullable = [f.name for f in features.FEATURES if getattr(f, "nullable", False)]
    if nullable:
        rows.append({**base, **dict.fromkeys(nullable)})
    for step, feature in enumerate(features.FEATURES[:3], start=1):
        if getattr(feature, "string_levels", False):  # levels, no range
            continue
        value = feature.minimum + (feature.maximum - feature.minimum) * step / 4
        if feature.kind == "categorical":
            value = float(round(value))
        rows.append({**base, feature.name: float(value)})
    return rows


def check_saved_model(args: argparse.Namespace) -> tuple[list[str], str]:
    return validate_saved_model(Path(args.path), args.package)


def check_trained(args: argparse.Namespace) -> tuple[list[str], str]:
    package = args.package
    modeling = importlib.import_module(f"{package}.modeling")
    data = importlib.import_module(f"{package}.data")
    X, y = data.dataset(args.rows, args.seed)
    model = modeling.fit(X, y, args.seed)
    with tempfile.TemporaryDirectory(prefix="mlgen-tfserving-") as scratch:
        artifact = modeling.export(model, Path(scratch))
        problems, summary = validate_saved_model(
            artifact, package, lambda matrix: modeling.predict_proba(model, matrix)
        )
        try:
            name = str(artifact.relative_to(scratch))
        except ValueError:
            name = artifact.name
    return problems, f"export() -> {name}/{summary}" if summary else ""


# ------------------------------------------------------------------ command line
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser("config")
    config.add_argument("--dir", required=True)
    config.add_argument("--model-name", required=True)
    config.add_argument("--metrics-path", required=True)
    config.add_argument("--dockerfile")
    config.add_argument("--grpc-port", type=int, default=8500)
    config.add_argument("--http-port", type=int, default=8501)
    saved = commands.add_parser("savedmodel")
    saved.add_argument("path")
    saved.add_argument("--package", required=True)
    train = commands.add_parser("train")
    train.add_argument("--package", required=True)
    train.add_argument("--rows", type=int, default=600)
    train.add_argument("--seed", type=int, default=3)
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = _parser().parse_args(list(argv) if argv is not None else None)
    run = {"config": check_config, "savedmodel": check_saved_model, "train": check_trained}
    try:
        problems, summary = run[args.command](args)
    except MissingPackage as error:
        print(f"FAILED: {error}")
        return 2
    except Exception as error:  # a model or file the validator cannot even read
        message = re.sub(r"\s+", " ", str(error))[:500]
        print(f"FAILED: {type(error).__name__}: {message}")
        return 1
    for problem in problems:
        print(f"problem: {problem}")
    if problems:
        print(f"FAILED: {len(problems)} problem(s)")
        return 1
    print(f"ok: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
