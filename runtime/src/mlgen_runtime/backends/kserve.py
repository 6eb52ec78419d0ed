"""KServe's Python model server for a repository's feature schema and exported model.

Needs ``kserve`` (which brings ``grpcio`` and ``prometheus-client``), a dependency of the
repositories that serve with it. A repository's ``serving/model.py`` passes its schema,
its loader and its model name to :func:`main`; what it serves:

* ``POST /v2/models/<name>/infer`` (Open Inference Protocol v2, REST and gRPC): one FP32
  input tensor (the ONNX graph's input name) of shape ``[n, width]``, columns in schema
  order; or, for a model exported with preprocessing (a string category or a nullable
  feature in the schema), one tensor per feature as the runtime's own service takes them
  (:mod:`mlgen_runtime.serving.v2_tensors`: ``BYTES`` for a string category, ``""`` a
  null; ``FP32``, ``null`` in JSON or NaN a null; shape ``[n]`` or ``[n, 1]``); outputs
  ``probabilities`` (FP32, ``[n, 2]``: both classes, as the ONNX graph and the runtime's
  own service answer) and ``label`` (INT64, ``[n]``), or those the request's ``outputs``
  name;
* ``POST /v1/models/<name>:predict``: ``{"instances": [{feature: value, ...}]}`` (feature
  objects, as the other mlgen backends take them, or lists in column order; raw values
  for a model with preprocessing: level strings, ``null`` for a nullable feature);
* KServe's health, metadata and ``/metrics`` endpoints, plus
  ``model_inference_errors{model_name,reason}`` and ``model_prediction_probability``.

Out-of-range values, non-finite values, non-codes of categorical features, a wrong
tensor name, datatype or shape, an unknown requested output and batches above
``max_batch_size`` answer 400
(``InvalidInput``). KServe only starts serving once the model is loaded: a model that
is missing or cannot load makes :func:`main` log ``<name> model NOT ready: ...`` and
return 1, so Kubernetes never routes traffic to a server without a model.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kserve
import kserve.logging
import numpy as np
from grpc import aio
from kserve import InferOutput, InferRequest, InferResponse, model_server
from kserve.errors import InvalidInput
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc import server as grpc_server
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor, LoggingInterceptor
from kserve.protocol.grpc.servicer import InferenceServicer
from prometheus_client import Counter, Histogram

from mlgen_runtime.backends import max_batch_size_from_env
from mlgen_runtime.export.preprocessing import needs_preprocessing
from mlgen_runtime.schema import FeatureSchema
from mlgen_runtime.serving.v2_tensors import InputReader, TensorError, input_specs

logger = logging.getLogger("kserve")

INPUT_DATATYPE = "FP32"
PROBABILITIES_OUTPUT = "probabilities"
LABEL_OUTPUT = "label"
OUTPUTS = (PROBABILITIES_OUTPUT, LABEL_OUTPUT)

# In the default Prometheus registry, which the model server's /metrics exposes next to
# KServe's own request_{preprocess,predict,postprocess}_seconds histograms.
INFERENCE_ERRORS = Counter(
    "model_inference_errors",
    "Inference requests the model refused or failed, by reason "
    "(invalid_input: answered 400; internal: answered 500).",
    ["model_name", "reason"],
)
PREDICTION_PROBABILITY = Histogram(
    "model_prediction_probability",
    "Predicted positive-class probabilities.",
    ["model_name"],
    buckets=tuple(round(0.1 * step, 1) for step in range(1, 11)),
)

_DATATYPES = {PROBABILITIES_OUTPUT: "FP32", LABEL_OUTPUT: "INT64"}

Predict = Callable[[Any], np.ndarray]
"""An exported model: a float32 matrix (or, with preprocessing, raw columns by feature
name) in, positive-class probabilities out."""


def check_matrix(schema: FeatureSchema, matrix: np.ndarray) -> None:
    """Refuse values the model was not trained for: non-finite, out of range, non-codes.

    Raises:
        InvalidInput: naming the first bad row and feature (the server answers 400).
    """
    features = schema.features
    values = matrix.astype(np.float64)
    minima = np.array([feature.minimum for feature in features], dtype=np.float64)
    maxima = np.array([feature.maximum for feature in features], dtype=np.float64)
    categorical = np.array([feature.kind == "categorical" for feature in features])
    inside = np.isfinite(values) & (values >= minima) & (values <= maxima)
    whole = ~categorical | (np.floor(values) == values)
    bad = np.argwhere(~(inside & whole))
    if bad.size:
        row, column = (int(i) for i in bad[0])
        raise InvalidInput(f"row {row}: {features[column].problem(float(values[row, column]))}")


def v2_features(
    request: InferRequest, schema: FeatureSchema, input_name: str, max_batch_size: int
) -> np.ndarray:
    """The float32 matrix of a v2 request's one input tensor (``InvalidInput`` if not)."""
    names = [tensor.name for tensor in request.inputs]
    if names != [input_name]:
        raise InvalidInput(f"expected exactly one input tensor named {input_name!r}, got {names}")
    (tensor,) = request.inputs
    if tensor.datatype != INPUT_DATATYPE:
        raise InvalidInput(
            f"input {input_name!r} must have datatype {INPUT_DATATYPE}, got {tensor.datatype}"
        )
    shape = [int(size) for size in tensor.shape]
    if len(shape) != 2 or shape[1] != schema.width:
        raise InvalidInput(
            f"input {input_name!r} must have shape [n, {schema.width}] (columns: "
            f"{', '.join(schema.names)}), got {shape}"
        )
    check_batch_size(shape[0], max_batch_size)
    try:
        matrix = tensor.as_numpy()
    except (TypeError, ValueError) as error:  # wrong element count, non-numbers
        raise InvalidInput(f"input {input_name!r}: {error}") from None
    return np.ascontiguousarray(matrix, dtype=np.float32)


@dataclass(frozen=True)
class _Tensor:
    """A request input as :class:`~mlgen_runtime.serving.v2_tensors.InputReader` reads it."""

    name: str
    shape: list[int]
    datatype: str
    data: Any
    parameters: None = None


def _tensor_data(tensor: Any) -> Any:
    """A KServe input's values as JSON data: strings for ``BYTES``, ``None`` for NaN."""
    if getattr(tensor, "_raw_data", None) is None and isinstance(tensor.data, list):
        return tensor.data  # JSON: nulls stay null
    try:
        values = tensor.as_numpy().reshape(-1)
    except (TypeError, ValueError) as error:  # wrong element count, non-numbers
        raise InvalidInput(f"input {tensor.name!r}: {error}") from None
    if values.dtype.kind == "f":
        return [None if np.isnan(value) else float(value) for value in values.tolist()]
    if tensor.datatype != "BYTES":
        return values.tolist()
    try:
        return [v.decode("utf-8") if isinstance(v, bytes) else v for v in values.tolist()]
    except UnicodeDecodeError:
        raise InvalidInput(f"input {tensor.name!r}: a BYTES element is not UTF-8 text") from None


def v2_columns(request: InferRequest, reader: InputReader) -> dict[str, np.ndarray]:
    """The raw columns of a v2 request with one tensor per feature, checked as the
    runtime's own service checks them (``InvalidInput`` naming the input if not)."""
    tensors = [
        _Tensor(t.name, [int(size) for size in t.shape], t.datatype, _tensor_data(t))
        for t in request.inputs
    ]
    try:
        return reader.columns(tensors, memoryview(b""))
    except TensorError as error:
        raise InvalidInput(str(error)) from None


def v1_columns(payload: Any, schema: FeatureSchema, max_batch_size: int) -> dict[str, Any]:
    """The raw columns of a v1 body for a model with preprocessing: each instance an
    object of every feature's raw value (``InvalidInput`` naming the row and feature)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
        raise InvalidInput('expected a JSON object {"instances": [...]}')
    instances = payload["instances"]
    check_batch_size(len(instances), max_batch_size)
    names = list(schema.names)
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise InvalidInput(f"row {index}: expected an object of features")
        if set(instance) != set(names):
            missing = [name for name in names if name not in instance]
            extra = sorted(set(instance) - set(names))
            raise InvalidInput(
                f"row {index}: "
                + (f"missing feature {missing[0]!r}" if missing else f"unknown field {extra[0]!r}")
            )
        for feature in schema.features:
            value = instance[feature.name]
            if isinstance(value, bool) and feature.type != "boolean":
                raise InvalidInput(f"row {index}: {feature.name} must not be true or false")
            problem = feature.problem(value)
            if problem:
                raise InvalidInput(f"row {index}: {problem}")
    return {name: [instance[name] for instance in instances] for name in names}


def requested_outputs(request: InferRequest) -> list[str]:
    """The outputs a v2 request names, in its order (all of :data:`OUTPUTS` when it names
    none); ``InvalidInput`` for a name the model does not have."""
    names = [output.name for output in request.request_outputs or ()]
    unknown = [name for name in names if name not in OUTPUTS]
    if unknown:
        raise InvalidInput(f"unknown output {unknown[0]!r}: the model has {', '.join(OUTPUTS)}")
    return names or list(OUTPUTS)


def v1_features(payload: Any, schema: FeatureSchema, max_batch_size: int) -> np.ndarray:
    """The float32 matrix of a v1 ``{"instances": [...]}`` body (``InvalidInput`` if not)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
        raise InvalidInput('expected a JSON object {"instances": [...]}')
    extra = sorted(set(payload) - {"instances", "parameters"})
    if extra:
        raise InvalidInput(f"unknown field(s) {', '.join(extra)}")
    instances = payload["instances"]
    check_batch_size(len(instances), max_batch_size)
    rows = []
    for index, instance in enumerate(instances):
        if isinstance(instance, list):
            if len(instance) != schema.width:
                raise InvalidInput(
                    f"row {index}: expected {schema.width} values "
                    f"({', '.join(schema.names)}), got {len(instance)}"
                )
            instance = dict(zip(schema.names, instance, strict=True))
        if not isinstance(instance, dict):
            raise InvalidInput(f"row {index}: expected an object of features or a list")
        for name, value in instance.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(f"row {index}: {name} must be a number, got {value!r}")
        rows.append(instance)
    try:
        return schema.to_matrix(rows)
    except ValueError as error:
        raise InvalidInput(str(error)) from None


def check_batch_size(rows: int, max_batch_size: int) -> None:
    """``InvalidInput`` unless ``1 <= rows <= max_batch_size``."""
    if rows < 1:
        raise InvalidInput("a request holds at least one row")
    if rows > max_batch_size:
        raise InvalidInput(f"a request holds at most {max_batch_size} rows, got {rows}")


@dataclass
class Batch:
    """A checked request: the feature matrix, and the request it came from."""

    features: np.ndarray | dict[str, Any]  # raw columns by name: a model with preprocessing
    request: InferRequest | None  # None: a v1 request


# ------------------------------------------------------------------ the model
@dataclass(frozen=True)
class ModelSpec:
    """What a repository contributes: its schema, loader, and how it names and versions.

    Attributes:
        schema: the feature schema (column order of the matrix).
        load_model: opens the exported artifact; returns its ``predict``.
        version_of: the version of an artifact when ``$MODEL_VERSION`` is not set.
        input_name: the v2 input tensor (the ONNX graph's input name).
        threshold: the decision threshold of ``label``.
    """

    schema: FeatureSchema
    load_model: Callable[[Path], Predict]
    version_of: Callable[[Path], str]
    input_name: str = "features"
    threshold: float = 0.5


class SchemaModel(kserve.Model):  # type: ignore[misc]
    """An exported model behind KServe's v1 and v2 protocols."""

    def __init__(
        self, name: str, model_path: Path, spec: ModelSpec, max_batch_size: int | None = None
    ) -> None:
        super().__init__(name)
        self.model_path = Path(model_path)
        self.spec = spec
        self.max_batch_size = max_batch_size or max_batch_size_from_env()
        self.version: str | None = None
        self.error: str | None = None
        self._predict: Predict | None = None
        self.raw = needs_preprocessing(spec.schema.features)
        """Whether the model takes one raw input per feature (see :func:`v2_columns`)."""
        self.reader = InputReader(spec.schema, self.max_batch_size)

    def load(self) -> bool:
        """Open the model and run one prediction; on failure record and log why."""
        self.ready, self._predict, self.version, self.error = False, None, None, None
        if not self.model_path.is_file():
            self.error = f"model file not found: {self.model_path}"
        else:
            try:
                predict = self.spec.load_model(self.model_path)
                predict(self.spec.schema.to_matrix([self.spec.schema.example_row()]))
            except Exception as error:  # any failure means "not ready"
                lines = str(error).strip().splitlines()
                detail = lines[0] if lines else "no detail"
                self.error = (
                    f"cannot load model {self.model_path}: {type(error).__name__}: {detail}"
                )
            else:
                self._predict = predict
                self.version = os.environ.get("MODEL_VERSION") or self.spec.version_of(
                    self.model_path
                )
                self.ready = True
        if self.error is not None:
            logger.error("%s model NOT ready: %s", self.name, self.error)
        else:
            logger.info("%s model %s loaded from %s", self.name, self.version, self.model_path)
        return bool(self.ready)

    def get_input_types(self) -> list[dict[str, Any]]:
        """The v2 metadata of the input tensor (``GET /v2/models/<name>``)."""
        if self.raw:
            return [spec.as_json() for spec in input_specs(self.spec.schema)]
        width = self.spec.schema.width
        return [{"name": self.spec.input_name, "datatype": INPUT_DATATYPE, "shape": [-1, width]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        """The v2 metadata of the output tensors."""
        return [
            {"name": PROBABILITIES_OUTPUT, "datatype": "FP32", "shape": [-1, 2]},
            {"name": LABEL_OUTPUT, "datatype": "INT64", "shape": [-1]},
        ]

    def validate(self, payload: Any) -> Any:
        """:meth:`preprocess` has checked everything (KServe's own check expects dicts)."""
        return payload

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Batch:
        """Check a v2 ``InferRequest`` (REST or gRPC) or a v1 body; 400 when invalid."""
        schema = self.spec.schema
        features: np.ndarray | dict[str, Any]
        try:
            if isinstance(payload, InferRequest):
                requested_outputs(payload)
                request: InferRequest | None = payload
                if self.raw:
                    features = v2_columns(payload, self.reader)
                else:
                    features = v2_features(
                        payload, schema, self.spec.input_name, self.max_batch_size
                    )
            else:
                request = None
                if self.raw:
                    features = v1_columns(payload, schema, self.max_batch_size)
                else:
                    features = v1_features(payload, schema, self.max_batch_size)
            if isinstance(features, np.ndarray):
                check_matrix(schema, features)
        except InvalidInput:
            INFERENCE_ERRORS.labels(self.name, "invalid_input").inc()
            raise
        return Batch(features, request)

    async def predict(
        self,
        payload: Batch,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse | dict[str, Any]:
        """One model call for the whole batch, answered in the request's protocol."""
        try:
            if self._predict is None:
                raise RuntimeError(f"model not ready: {self.error}")
            probabilities = np.asarray(self._predict(payload.features), dtype=np.float32)
        except Exception:
            INFERENCE_ERRORS.labels(self.name, "internal").inc()
            raise
        labels = (probabilities >= self.spec.threshold).astype(np.int64)
        histogram = PREDICTION_PROBABILITY.labels(self.name)
        for probability in probabilities.tolist():
            histogram.observe(probability)
        if payload.request is None:
            pairs = zip(probabilities.tolist(), labels.tolist(), strict=True)
            return {
                "predictions": [{"probability": p, "label": label} for p, label in pairs],
                "model_version": self.version,
            }
        values = {
            PROBABILITIES_OUTPUT: np.stack([1.0 - probabilities, probabilities], axis=1),
            LABEL_OUTPUT: labels,
        }
        outputs = []
        for name in requested_outputs(payload.request):
            output = InferOutput(name, list(values[name].shape), _DATATYPES[name])
            output.set_data_from_numpy(values[name], binary_data=False)
            outputs.append(output)
        return InferResponse(
            response_id=payload.request.id or str(uuid.uuid4()),
            model_name=self.name,
            model_version=self.version,
            infer_outputs=outputs,
            from_grpc=payload.request.from_grpc,
            # raw outputs for raw gRPC inputs (what tritonclient.grpc sends and reads), or
            # when a REST request asks for binary outputs
            use_binary_outputs=payload.request.use_binary_outputs,
        )


# ------------------------------------------------------------------ listening address
_HOST = "0.0.0.0"


class _RESTServer(model_server.RESTServer):  # type: ignore[misc]
    """KServe's REST server on :data:`_HOST` (KServe 0.21 always binds 0.0.0.0)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.host = _HOST


class _GRPCServer(grpc_server.GRPCServer):  # type: ignore[misc]
    """KServe's gRPC server on :data:`_HOST`: ``GRPCServer.start`` of KServe 0.21 with
    the listening address changed (it always binds ``[::]``)."""

    async def start(self, max_workers: int) -> None:
        servicer = InferenceServicer(self._data_plane, self._model_repository_extension)
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(LoggingInterceptor(), ExceptionToStatusInterceptor()),
            options=[
                ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                (
                    "grpc.max_receive_message_length",
                    self._kwargs.get("grpc_max_receive_message_length"),
                ),
            ],
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        address = f"[{_HOST}]:{self._port}" if ":" in _HOST else f"{_HOST}:{self._port}"
        self._server.add_insecure_port(address)
        logger.info("Starting gRPC server on %s", address)
        await self._server.start()
        await self._server.wait_for_termination()


def listen_on(host: str) -> None:
    """Make the model server listen on ``host`` (both REST and gRPC)."""
    global _HOST
    if host in ("0.0.0.0", "::"):
        return  # KServe's own servers already listen on every address
    _HOST = host
    model_server.RESTServer = _RESTServer
    model_server.GRPCServer = _GRPCServer


# ------------------------------------------------------------------ command line
def build_parser(prog: str, model_name: str) -> argparse.ArgumentParser:
    """KServe's model server options plus ``--model_path`` and ``--host``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        parents=[model_server.parser],
        description=f"Serve the {model_name} model with the KServe model server.",
    )
    parser.add_argument(
        "--model_path",
        type=Path,
        default=None,
        help="the exported model (default: $MODEL_PATH, else the repository's artifact)",
    )
    parser.add_argument(
        "--host",
        default="0.0.0.0",
        help="address the REST and gRPC servers listen on (default: %(default)s)",
    )
    parser.set_defaults(model_name=model_name)
    return parser


def main(
    argv: list[str] | None,
    *,
    prog: str,
    model_name: str,
    spec: ModelSpec,
    default_model_path: Path,
) -> int:
    """Load the model (``--model_path``, else ``$MODEL_PATH``, else ``default_model_path``)
    and serve it until SIGTERM; returns the exit status (1: the model did not load)."""
    args = build_parser(prog, model_name).parse_args(argv)
    if args.configure_logging:  # before loading, so the "NOT ready" line is formatted
        kserve.logging.configure_logging(args.log_config_file)
    configured = os.environ.get("MODEL_PATH", "").strip()
    path = args.model_path or (Path(configured).expanduser() if configured else default_model_path)
    model = SchemaModel(args.model_name, Path(path).resolve(), spec)
    if not model.load():
        return 1
    if args.host not in ("0.0.0.0", "::") and args.workers > 1:
        print("--host needs --workers 1", file=sys.stderr)
        return 2
    listen_on(args.host)
    server = kserve.ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=args.workers,
        max_threads=args.max_threads,
        max_asyncio_workers=args.max_asyncio_workers,
        enable_grpc=args.enable_grpc,
        enable_docs_url=args.enable_docs_url,
        enable_latency_logging=args.enable_latency_logging,
        access_log_format=args.access_log_format,
    )
    server.start([model])
    return 0
