"""Triton model repositories: a ``config.pbtxt`` validated with Triton's own schema and
against the ONNX graph, and the folders Triton loads.

Layout (what Triton reads)::

    <repository>/<model>/config.pbtxt
    <repository>/<model>/1/model.onnx

:func:`parse_config` reads protobuf text into Triton's ``inference.ModelConfig``
(``tritonclient.grpc.model_config_pb2``, so a misspelled field or a wrong enum fails with
its line and column); :func:`config_problems` lists what Triton would refuse or what the
repository relies on, for the :class:`Rules` the repository sets (model name, tensor
names, GPUs per pod, latency objective); :func:`signature_problems` compares every input
and output with the exported graph; :func:`validate` does all three.
:func:`build_repository` assembles the deployable folder; :func:`build_local_repository`
the LOCAL-ONLY python-backend twin that the ``nvidia-pytriton`` tritonserver can serve
(see :mod:`mlgen_runtime.backends.triton_local`). :func:`main` is a repository's
``python -m <package>.serving.model_repository check|build`` command.

Needs ``tritonclient[grpc]`` (and ``onnx`` for :func:`graph_signature`), which Triton
repositories depend on; they are imported inside the functions that use them.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PYTHON_MODEL_SOURCE = Path(__file__).with_name("triton_python_model.py")
"""The LOCAL-ONLY python-backend model (ONNX Runtime in Triton's python backend) that
:func:`build_local_repository` copies to ``<model>/1/model.py``."""
CONFIG_FILENAME = "config.pbtxt"
MODEL_VERSION = "1"
"""The version folder the model is served from (``version_policy`` keeps the latest)."""
BACKEND = "onnxruntime"
PLATFORM = "onnxruntime_onnx"
DYNAMIC = -1

# ONNX TensorProto element types and the Triton data types they are served as.
_ONNX_TO_TRITON = {
    1: "TYPE_FP32",
    2: "TYPE_UINT8",
    3: "TYPE_INT8",
    4: "TYPE_UINT16",
    5: "TYPE_INT16",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    8: "TYPE_STRING",
    9: "TYPE_BOOL",
    10: "TYPE_FP16",
    11: "TYPE_FP64",
    12: "TYPE_UINT32",
    13: "TYPE_UINT64",
    16: "TYPE_BF16",
}


class ConfigError(ValueError):
    """The configuration does not parse as a Triton ``ModelConfig``."""


@dataclass(frozen=True)
class Rules:
    """What a repository's configuration must agree with.

    Attributes:
        model_name: the model folder's name (``config.name`` must equal it).
        input_name: the one input clients send (when ``raw_inputs`` is empty).
        n_features: the input's width (``dims`` must be ``[n_features]``).
        probabilities_output: the output clients read.
        artifact_name: the model file in the version folder.
        gpus_per_pod: GPUs each pod requests (0: ``KIND_CPU`` instances only).
        latency_slo_ms: the p95 objective; the batcher's queue delay must stay below half.
        raw_inputs: for a model exported with preprocessing (:func:`raw_inputs`), its
            inputs in order: ``(feature name, TYPE_FP32 | TYPE_STRING)``, each ``dims:
            [1]``; empty: the one ``input_name`` matrix.
    """

    model_name: str
    input_name: str
    n_features: int
    probabilities_output: str
    artifact_name: str = "model.onnx"
    gpus_per_pod: int = 0
    latency_slo_ms: float = 100.0
    raw_inputs: tuple[tuple[str, str], ...] = ()

    @property
    def instance_kind(self) -> str:
        """The instance-group kind the pods provide."""
        return "KIND_GPU" if self.gpus_per_pod > 0 else "KIND_CPU"


def raw_inputs(features: Iterable[Any]) -> tuple[tuple[str, str], ...]:
    """The inputs of a schema's exported graph when it takes raw values: one per feature,
    ``TYPE_STRING`` for a category with string levels, ``TYPE_FP32`` (NaN: null) for the
    others; empty when the schema has no string category and no nullable feature (the
    graph keeps its one matrix input). See :mod:`mlgen_runtime.export.preprocessing`."""
    from mlgen_runtime.export.preprocessing import is_string_category, needs_preprocessing

    features = tuple(features)
    if not needs_preprocessing(features):
        return ()
    return tuple(
        (feature.name, "TYPE_STRING" if is_string_category(feature) else "TYPE_FP32")
        for feature in features
    )


def _pb2() -> Any:
    """Triton's ``model_config_pb2``, loaded without ``tritonclient.grpc``'s package
    (its ``service_pb2`` registers ``inference.*`` messages that clash with KServe's in a
    process that imported both); a later ``import tritonclient.grpc`` reuses it."""
    name = "tritonclient.grpc.model_config_pb2"
    if name in sys.modules:
        return sys.modules[name]
    package = importlib.util.find_spec("tritonclient")
    if package is None or not package.submodule_search_locations:
        raise ModuleNotFoundError("tritonclient is not installed (the runtime's triton extra)")
    path = Path(next(iter(package.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def parse_config(text: str, source: str = CONFIG_FILENAME) -> Any:
    """Parse protobuf text into Triton's ``ModelConfig``.

    Raises:
        ConfigError: an unknown field, a wrong value type or enum, or bad syntax; the
            message starts with ``source:line:column``.
    """
    from google.protobuf import text_format

    config = _pb2().ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        where = f"{source}:{error.GetLine()}:{error.GetColumn()}" if error.GetLine() else source
        message = str(error).split(" : ", 1)[-1]
        raise ConfigError(f"{where}: {message}") from None
    return config


def load_config(path: Path) -> Any:
    """Read and parse a ``config.pbtxt`` (see :func:`parse_config`)."""
    return parse_config(Path(path).read_text(encoding="utf-8"), Path(path).name)


def type_name(data_type: int) -> str:
    """``TYPE_FP32`` and so on: the name of a ``DataType`` value."""
    return str(_pb2().DataType.Name(data_type))


def kind_name(kind: int) -> str:
    """``KIND_CPU`` and so on: the name of an instance-group kind."""
    return str(_pb2().ModelInstanceGroup.Kind.Name(kind))


def config_problems(config: Any, rules: Rules) -> list[str]:
    """What Triton would refuse, or what this repository relies on, in ``config``."""
    problems: list[str] = []
    if config.name != rules.model_name:
        problems.append(
            f"name is {config.name!r}: it must be the model folder's name {rules.model_name!r}"
        )
    if config.backend != BACKEND and config.platform != PLATFORM:
        problems.append(
            f"backend is {config.backend or '(unset)'!r}: the exported ONNX model needs "
            f'backend: "{BACKEND}"'
        )
    if config.default_model_filename not in ("", rules.artifact_name):
        problems.append(
            f"default_model_filename is {config.default_model_filename!r}: the image puts "
            f"the model at {MODEL_VERSION}/{rules.artifact_name}"
        )
    if config.max_batch_size < 1:
        problems.append(
            f"max_batch_size is {config.max_batch_size}: the model is exported with a "
            "batch dimension, so it must be at least 1"
        )
    problems += _tensor_problems(config, rules)
    problems += _batching_problems(config, rules)
    problems += _instance_problems(config, rules)
    problems += _warmup_problems(config)
    return problems


def _tensor_problems(config: Any, rules: Rules) -> Iterator[str]:
    for kind, tensors in (("input", config.input), ("output", config.output)):
        names = [tensor.name for tensor in tensors]
        if not names:
            yield f"no {kind} is declared"
        for name in sorted({name for name in names if names.count(name) > 1}):
            yield f"{kind} {name!r} is declared more than once"
        for tensor in tensors:
            if tensor.data_type == _pb2().TYPE_INVALID:
                yield f"{kind} {tensor.name!r} has no data_type"
            if not tensor.dims and not tensor.HasField("reshape"):
                yield f"{kind} {tensor.name!r} has no dims"
            if any(dim < DYNAMIC or dim == 0 for dim in tensor.dims):
                dims = list(tensor.dims)
                yield f"{kind} {tensor.name!r} dims {dims}: each must be -1 or positive"
            if tensor.HasField("reshape"):
                before, after = _elements(tensor.dims), _elements(tensor.reshape.shape)
                if None not in (before, after) and before != after:
                    yield (
                        f"{kind} {tensor.name!r}: reshape {list(tensor.reshape.shape)} holds "
                        f"{after} elements, dims {list(tensor.dims)} hold {before}"
                    )
    if rules.raw_inputs:
        yield from _raw_input_problems(config, rules)
    else:
        yield from _matrix_input_problems(config, rules)
    if config.output and rules.probabilities_output not in {o.name for o in config.output}:
        yield f"output {rules.probabilities_output!r} (what clients read) is not declared"


def _raw_input_problems(config: Any, rules: Rules) -> Iterator[str]:
    """The inputs of a model with preprocessing: one per feature, in schema order."""
    names = [tensor.name for tensor in config.input]
    expected = [name for name, _ in rules.raw_inputs]
    if names and names != expected:
        yield (
            f"inputs are {names}: the model takes one raw input per feature, in the "
            f"schema's order: {expected}"
        )
    types = dict(rules.raw_inputs)
    for tensor in config.input:
        wanted = types.get(tensor.name)
        if wanted is not None and type_name(tensor.data_type) != wanted:
            yield (
                f"input {tensor.name!r} is {type_name(tensor.data_type)}: the feature's raw "
                f"values are {wanted}"
            )
        if wanted is not None and list(tensor.dims) != [1]:
            yield f"input {tensor.name!r} dims {list(tensor.dims)}: one value per row, dims [1]"


def _matrix_input_problems(config: Any, rules: Rules) -> Iterator[str]:
    """The input of a model without preprocessing: the one ``[n_features]`` matrix."""
    if [tensor.name for tensor in config.input] not in ([], [rules.input_name]):
        yield (
            f"inputs are {[tensor.name for tensor in config.input]}: clients send one "
            f"input, {rules.input_name!r}"
        )
    for tensor in config.input:
        if tensor.name == rules.input_name and list(tensor.dims) != [rules.n_features]:
            yield (
                f"input {tensor.name!r} dims {list(tensor.dims)}: the schema defines "
                f"{rules.n_features} features, so dims must be [{rules.n_features}]"
            )


def _elements(dims: Iterable[int]) -> int | None:
    """How many elements a shape holds; ``None`` when a dimension is dynamic."""
    total = 1
    for dim in dims:
        if dim == DYNAMIC:
            return None
        total *= int(dim)
    return total


def _batching_problems(config: Any, rules: Rules) -> Iterator[str]:
    if not config.HasField("dynamic_batching"):
        yield "dynamic_batching is missing: concurrent requests would not be batched"
        return
    batching = config.dynamic_batching
    for size in batching.preferred_batch_size:
        if not 1 <= size <= config.max_batch_size:
            yield (
                f"dynamic_batching.preferred_batch_size {size} is not between 1 and "
                f"max_batch_size {config.max_batch_size}"
            )
    slo_us = rules.latency_slo_ms * 1000
    if batching.max_queue_delay_microseconds > slo_us / 2:
        yield (
            f"dynamic_batching.max_queue_delay_microseconds {batching.max_queue_delay_microseconds}"
            f" is more than half the p95 latency objective ({rules.latency_slo_ms:g} ms)"
        )


def _instance_problems(config: Any, rules: Rules) -> Iterator[str]:
    if not config.instance_group:
        yield f"instance_group is empty: declare the {rules.instance_kind} instances explicitly"
        return
    kinds = set()
    for group in config.instance_group:
        kind = kind_name(group.kind)
        kinds.add(kind)
        if group.count < 1:
            yield f"instance_group {group.name or kind}: count must be at least 1"
        if kind == "KIND_GPU" and rules.gpus_per_pod == 0:
            yield (
                "instance_group uses KIND_GPU but the pods request no GPU: use KIND_CPU, "
                "or generate the repository with the triton-gpu backend"
            )
        if kind == "KIND_GPU" and any(gpu >= rules.gpus_per_pod for gpu in group.gpus):
            yield (
                f"instance_group gpus {list(group.gpus)}: each pod has "
                f"{rules.gpus_per_pod} GPU(s), ids 0..{rules.gpus_per_pod - 1}"
            )
        if kind not in ("KIND_CPU", "KIND_GPU", "KIND_AUTO"):
            yield f"instance_group kind {kind} cannot run an ONNX model"
    if rules.gpus_per_pod > 0 and "KIND_GPU" not in kinds:
        yield "the pods request a GPU but no instance_group uses KIND_GPU"


def _warmup_problems(config: Any) -> Iterator[str]:
    inputs = {tensor.name: tensor for tensor in config.input}
    for warmup in config.model_warmup:
        if not 1 <= warmup.batch_size <= max(config.max_batch_size, 1):
            yield f"model_warmup {warmup.name!r}: batch_size {warmup.batch_size} is out of range"
        for name, sample in warmup.inputs.items():
            declared = inputs.get(name)
            if declared is None:
                yield f"model_warmup {warmup.name!r}: input {name!r} is not a model input"
                continue
            if sample.data_type != declared.data_type:
                yield (
                    f"model_warmup {warmup.name!r}: input {name!r} is "
                    f"{type_name(sample.data_type)}, the model input is "
                    f"{type_name(declared.data_type)}"
                )
            if list(sample.dims) != list(declared.dims):
                yield (
                    f"model_warmup {warmup.name!r}: input {name!r} dims {list(sample.dims)} "
                    f"differ from the model input's {list(declared.dims)}"
                )


@dataclass(frozen=True)
class TensorSignature:
    """One graph input or output: its Triton data type and shape (-1: dynamic)."""

    name: str
    data_type: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class GraphSignature:
    """The inputs and outputs of an ONNX graph, as Triton sees them."""

    inputs: dict[str, TensorSignature]
    outputs: dict[str, TensorSignature]


def graph_signature(model_path: Path) -> GraphSignature:
    """Read the inputs (initializers excluded) and outputs of an ONNX model file."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    initializers = {initializer.name for initializer in graph.initializer}

    def tensor(value: onnx.ValueInfoProto) -> TensorSignature:
        tensor_type = value.type.tensor_type
        shape = tuple(
            dim.dim_value if dim.HasField("dim_value") else DYNAMIC for dim in tensor_type.shape.dim
        )
        data_type = _ONNX_TO_TRITON.get(tensor_type.elem_type, f"ONNX type {tensor_type.elem_type}")
        return TensorSignature(value.name, data_type, shape)

    return GraphSignature(
        inputs={v.name: tensor(v) for v in graph.input if v.name not in initializers},
        outputs={v.name: tensor(v) for v in graph.output},
    )


def signature_problems(config: Any, graph: GraphSignature) -> list[str]:
    """Where the config's inputs and outputs differ from the graph's."""
    problems: list[str] = []
    for kind, declared, actual in (
        ("input", config.input, graph.inputs),
        ("output", config.output, graph.outputs),
    ):
        for tensor in declared:
            found = actual.get(tensor.name)
            if found is None:
                problems.append(
                    f"{kind} {tensor.name!r} is not in the ONNX graph, whose {kind}s are "
                    f"{sorted(actual)}"
                )
                continue
            if type_name(tensor.data_type) != found.data_type:
                problems.append(
                    f"{kind} {tensor.name!r} is {type_name(tensor.data_type)} in the config, "
                    f"{found.data_type} in the ONNX graph"
                )
            problems += _shape_problems(kind, tensor, found, config.max_batch_size)
    missing = sorted(set(graph.inputs) - {tensor.name for tensor in config.input})
    if missing:
        problems.append(f"the ONNX graph's input(s) {missing} are not declared in the config")
    return problems


def _shape_problems(
    kind: str,
    tensor: Any,
    found: TensorSignature,
    max_batch_size: int,
) -> list[str]:
    # The shape the model sees: the reshape when there is one, else dims; with batching
    # on, Triton adds the batch dimension in front.
    shape = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
    graph_shape = list(found.shape)
    where = f"{kind} {tensor.name!r}"
    described = f"dims {list(tensor.dims)}" + (
        f" reshape {shape}" if tensor.HasField("reshape") else ""
    )
    if max_batch_size > 0:
        if not graph_shape or graph_shape[0] != DYNAMIC:
            return [
                (
                    f"{where}: the ONNX graph's shape {graph_shape} has no dynamic batch "
                    f"dimension, but max_batch_size is {max_batch_size}"
                )
            ]
        graph_shape = graph_shape[1:]
    if len(shape) != len(graph_shape) or any(
        graph_dim != DYNAMIC and dim != graph_dim
        for dim, graph_dim in zip(shape, graph_shape, strict=False)
    ):
        batch = " (after the batch dimension)" if max_batch_size > 0 else ""
        return [f"{where}: {described} in the config, {graph_shape}{batch} in the ONNX graph"]
    return []


@dataclass(frozen=True)
class Validation:
    """The outcome of :func:`validate`."""

    problems: list[str]
    summary: str

    @property
    def ok(self) -> bool:
        """Whether the configuration is valid."""
        return not self.problems


def validate(config_path: Path, model_path: Path, rules: Rules) -> Validation:
    """Validate a ``config.pbtxt``: Triton's schema, ``rules``, and the graph at ``model_path``."""
    try:
        config = load_config(config_path)
    except ConfigError as error:
        return Validation([str(error)], "")
    problems = config_problems(config, rules) + signature_problems(
        config, graph_signature(model_path)
    )
    tensors = ", ".join(
        f"{tensor.name} {type_name(tensor.data_type).removeprefix('TYPE_')}{list(tensor.dims)}"
        for tensor in (*config.input, *config.output)
    )
    kinds = "+".join(
        f"{group.count}x{kind_name(group.kind).removeprefix('KIND_')}"
        for group in config.instance_group
    )
    summary = (
        f"{Path(config_path).name}: ModelConfig {config.name!r} "
        f"({config.backend or config.platform}, max_batch_size {config.max_batch_size}, "
        f"instances {kinds}) matches the ONNX graph: {tensors}"
    )
    return Validation(problems, summary)


def _fresh_model_folder(destination: Path, model_name: str) -> Path:
    model_dir = Path(destination) / model_name
    if model_dir.exists():
        shutil.rmtree(model_dir)
    (model_dir / MODEL_VERSION).mkdir(parents=True)
    return model_dir


def build_repository(artifact: Path, destination: Path, config_path: Path, rules: Rules) -> Path:
    """Assemble the deployable model repository (what the image serves); return its root.

    ``destination/<model>/config.pbtxt`` is ``config_path``, unchanged;
    ``destination/<model>/1/<artifact_name>`` is ``artifact``. A configuration Triton
    cannot parse is refused (:class:`ConfigError`) before anything is written.
    """
    load_config(config_path)
    model_dir = _fresh_model_folder(destination, rules.model_name)
    shutil.copyfile(config_path, model_dir / CONFIG_FILENAME)
    shutil.copyfile(artifact, model_dir / MODEL_VERSION / rules.artifact_name)
    return Path(destination)


def local_config(config: Any) -> Any:
    """The LOCAL-ONLY python-backend twin of ``config``: same name, tensors, batching and
    warm-up; the python backend, one CPU instance, no ONNX Runtime backend parameters."""
    pb2 = _pb2()
    local = pb2.ModelConfig()
    local.CopyFrom(config)
    local.backend = "python"
    local.ClearField("platform")
    local.ClearField("default_model_filename")
    local.ClearField("parameters")
    local.ClearField("instance_group")
    local.instance_group.add(count=1, kind=pb2.ModelInstanceGroup.KIND_CPU)
    return local


def build_local_repository(
    artifact: Path,
    destination: Path,
    config_path: Path,
    rules: Rules,
    python_model: Path | None = None,
    header: str = "",
) -> Path:
    """Assemble the LOCAL-ONLY python-backend repository; return its root.

    ``<model>/config.pbtxt`` (``header`` + :func:`local_config` of ``config_path``),
    ``<model>/1/model.py`` (``python_model``, by default :data:`PYTHON_MODEL_SOURCE`) and
    ``<model>/1/<artifact_name>`` (``artifact``).
    """
    from google.protobuf import text_format

    config = local_config(load_config(config_path))
    model_dir = _fresh_model_folder(destination, rules.model_name)
    (model_dir / CONFIG_FILENAME).write_text(
        header + text_format.MessageToString(config), encoding="utf-8"
    )
    shutil.copyfile(python_model or PYTHON_MODEL_SOURCE, model_dir / MODEL_VERSION / "model.py")
    shutil.copyfile(artifact, model_dir / MODEL_VERSION / rules.artifact_name)
    return Path(destination)


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str,
    validate: Callable[[Path, Path | None], Validation],
    build: Callable[[Path, Path | None], Path],
    build_local: Callable[[Path, Path | None], Path],
    default_config: Path,
    default_artifact: Path,
    train_command: str = "python -m <package>.train",
) -> int:
    """A repository's model-repository command; returns the exit status.

    ``check [CONFIG] [--model MODEL.onnx]``: ``validate(config, model)`` (the repository's
    :func:`validate` with its :class:`Rules`; ``model`` ``None`` lets it export a small
    one), each problem printed, exit 1 when there is one. ``build [--artifact A] [--out
    DIR] [--local]``: ``build`` (or ``build_local``) of the artifact, the folder printed;
    a missing artifact is a usage error naming ``train_command``.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Validate the Triton model configuration, or build a model repository.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate config.pbtxt against the ONNX graph")
    check.add_argument("config", type=Path, nargs="?", default=default_config)
    check.add_argument(
        "--model", type=Path, default=None, help="exported ONNX model (default: train a small one)"
    )
    builder = commands.add_parser("build", help="assemble a model repository folder")
    builder.add_argument("--artifact", type=Path, default=default_artifact)
    builder.add_argument("--out", type=Path, help="destination (default: artifacts/triton/<kind>)")
    builder.add_argument(
        "--local", action="store_true", help="the LOCAL-ONLY python-backend variant"
    )
    args = parser.parse_args(argv)
    if args.command == "check":
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        result = validate(args.config, args.model)
        for problem in result.problems:
            print(problem)
        if not result.ok:
            print(f"{args.config}: {len(result.problems)} problem(s)", file=sys.stderr)
            return 1
        print(result.summary)
        return 0
    if not args.artifact.is_file():
        parser.error(f"{args.artifact} does not exist: train first ({train_command})")
    print((build_local if args.local else build)(args.artifact, args.out))
    return 0
