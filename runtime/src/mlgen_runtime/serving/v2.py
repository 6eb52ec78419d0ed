"""The Open Inference Protocol (KServe v2) REST endpoints, beside ``/predict``.

:func:`add_v2_routes` adds them to the service (``{name}`` is the served model's name):

* ``GET /v2``: server metadata; ``GET /v2/health/live``, ``GET /v2/health/ready``;
* ``GET /v2/models/{name}`` (also ``/versions/{version}``): the model's metadata, one
  input per feature (:func:`~mlgen_runtime.serving.v2_tensors.input_specs`);
* ``GET /v2/models/{name}/ready`` (also ``/versions/{version}/ready``);
* ``POST /v2/models/{name}/infer`` (also ``/versions/{version}/infer``): named tensors
  in, ``probabilities`` and ``label`` out (:mod:`.v2_tensors`); the request's ``id`` is
  echoed; ``parameters.user_id`` routes an A/B request and the answer's
  ``parameters.variant`` names the variant; a batch is one model call.

The binary tensor data extension works as in Triton (``Inference-Header-Content-Length``),
so ``tritonclient.http`` needs no special settings. Errors are the protocol's error object
``{"error": "..."}``: 400 for a request that does not fit the model (the message names the
input), 404 for another model or version, 503 while a model is not loaded.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations.

import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from mlgen_runtime.schema import FeatureSchema
from mlgen_runtime.serving.experiment import CONTROL
from mlgen_runtime.serving.fast_path import VARIANT_KEY
from mlgen_runtime.serving.model import ServedModel
from mlgen_runtime.serving.predictor import Predictor
from mlgen_runtime.serving.v2_tensors import (
    InputReader,
    TensorError,
    encode_outputs,
    input_specs,
    output_specs,
)

HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data"]
PLATFORM = "mlgen-runtime"


class RequestInput(BaseModel):
    """One input tensor of an inference request."""

    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = Field(default=None, description="Row-major values (flat or nested).")


class RequestOutput(BaseModel):
    """An output the request asks for (``binary_data`` in its parameters)."""

    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """``POST .../infer``: the inputs, and optionally which outputs to return."""

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    """One output tensor (``data``, or ``parameters.binary_data_size`` when binary)."""

    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    """The answer of ``POST .../infer``."""

    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    """An input or output of the model: name, datatype, shape (-1: any size)."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    """``GET /v2/models/{name}``."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    """``GET /v2``."""

    name: str
    version: str
    extensions: list[str]


class ServerReady(BaseModel):
    """``GET /v2/health/ready``."""

    ready: bool


class ModelReady(BaseModel):
    """``GET /v2/models/{name}/ready``."""

    name: str
    ready: bool


class ErrorObject(BaseModel):
    """The protocol's error object."""

    error: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorObject, "description": "The request does not fit the model."},
    404: {"model": ErrorObject, "description": "No such model or version."},
    503: {"model": ErrorObject, "description": "The model is not loaded."},
}


@dataclass(frozen=True)
class InferAnswer:
    """The answer to one ``infer`` request: status, body, content type, headers, and
    the variant that answered (``None`` when no model was called)."""

    status: int
    body: bytes
    media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    variant: str | None = None

    def response(self) -> Response:
        """The answer as a Starlette response (for the route)."""
        return Response(
            self.body, status_code=self.status, media_type=self.media_type, headers=self.headers
        )


def _error_answer(status: int, message: str) -> InferAnswer:
    """The protocol's error object, encoded as every answer of these routes is."""
    body = json.dumps({"error": message}, ensure_ascii=False, separators=(",", ":"))
    return InferAnswer(status, body.encode())


def _error(status: int, message: str) -> Response:
    return _error_answer(status, message).response()


class Inference:
    """Answers the ``infer`` requests of one served model, from the raw body: the route
    and the serving middleware's fast path (:mod:`.fast_path`, which spares a request
    FastAPI's routing) call the same :meth:`answer`.

    Args:
        name: the model's name in the URLs.
        control: the control model (its version is the model's).
        reader: reads the request's tensors into feature columns.
        predictor: answers predictions, as for ``/predict``.
        decision_threshold: a probability at or above it is label 1.
    """

    def __init__(
        self,
        name: str,
        control: ServedModel,
        reader: InputReader,
        predictor: Predictor,
        decision_threshold: float,
    ) -> None:
        self.name = name
        self.control = control
        self.reader = reader
        self.predictor = predictor
        self.decision_threshold = decision_threshold
        self.path = f"/v2/models/{name}/infer"
        """The unversioned path of this model's infer route."""

    def unknown(self, model_name: str, version: str | None) -> str | None:
        """Why a path naming ``model_name`` and ``version`` is a 404 (``None``: it is not)."""
        if model_name != self.name:
            return f"unknown model {model_name!r}: this server serves {self.name!r}"
        if version is not None and version != self.control.version:
            return (
                f"model {self.name!r} has no version {version!r} "
                f"(it serves {self.control.version!r})"
            )
        return None

    def answer(self, body: bytes, header_length: str | None) -> InferAnswer:
        """Predict the batch of named tensors of a request ``body`` (see the module
        docstring); every error is the protocol's error object."""
        try:
            header, binary = _split(body, header_length)
            payload = InferenceRequest.model_validate_json(header)
        except TensorError as error:
            return _error_answer(400, str(error))
        except ValidationError as error:
            return _error_answer(400, _first_problem(error))
        parameters = payload.parameters or {}
        user_id = parameters.get("user_id")
        try:
            if user_id is not None and not isinstance(user_id, str):
                raise TensorError("parameters.user_id must be a string")
            features = self.reader.read(payload.inputs, binary)
            outcome = self.predictor.predict(features, user_id)
            if outcome.status != 200:
                refused = _error_answer(outcome.status, outcome.error)
                return InferAnswer(refused.status, refused.body, variant=outcome.variant)
            outputs, chunks = encode_outputs(
                outcome.probabilities,
                self.decision_threshold,
                payload.outputs,
                binary=bool(parameters.get("binary_data_output", False)),
            )
        except TensorError as error:
            return _error_answer(400, str(error))
        answer: dict[str, Any] = {
            "model_name": self.name,
            "model_version": outcome.version,
            "outputs": outputs,
            "parameters": {"variant": outcome.variant},
        }
        if payload.id is not None:
            answer["id"] = payload.id
        # Built here in the shape of InferenceResponse (the documented model): validating
        # it again on every request would cost more than the model call.
        encoded = json.dumps(answer, separators=(",", ":")).encode()
        if not chunks:
            return InferAnswer(200, encoded, variant=outcome.variant)
        return InferAnswer(
            200,
            b"".join([encoded, *chunks]),
            media_type="application/octet-stream",
            headers={HEADER_LENGTH: str(len(encoded))},
            variant=outcome.variant,
        )


@dataclass(frozen=True)
class V2Routes:
    """What :func:`add_v2_routes` added: the concrete paths of this model's routes (for
    request metrics, which count paths, not route templates) and its :class:`Inference`."""

    paths: set[str]
    inference: Inference


def add_v2_routes(
    app: FastAPI,
    *,
    name: str,
    schema: FeatureSchema,
    models: dict[str, ServedModel],
    predictor: Predictor,
    decision_threshold: float,
    max_batch_size: int,
    server_version: str,
) -> V2Routes:
    """Add the v2 routes to ``app``; return their paths and the model's :class:`Inference`.

    Args:
        app: the service.
        name: the model's name in the URLs and the metadata.
        schema: the features (the model's inputs).
        models: the served models by variant; the control's version is the model's.
        predictor: answers predictions, as for ``/predict``.
        decision_threshold: a probability at or above it is label 1.
        max_batch_size: the most rows one request may hold.
        server_version: the version in the server metadata.
    """
    control = models[CONTROL]
    inference = Inference(
        name, control, InputReader(schema, max_batch_size), predictor, decision_threshold
    )
    metadata = {
        "platform": PLATFORM,
        "inputs": [spec.as_json() for spec in input_specs(schema)],
        "outputs": [spec.as_json() for spec in output_specs()],
    }

    def unknown(model_name: str, version: str | None) -> Response | None:
        """The 404 of a path naming another model, or a version not served."""
        reason = inference.unknown(model_name, version)
        return None if reason is None else _error(404, reason)

    @app.get("/v2", response_model=ServerMetadata, tags=["v2"])
    async def server_metadata() -> dict[str, Any]:
        """Server metadata: name, version and the protocol extensions it supports."""
        return {"name": PLATFORM, "version": server_version, "extensions": EXTENSIONS}

    @app.get("/v2/health/live", tags=["v2"])
    async def server_live() -> dict[str, bool]:
        """Liveness: 200 while the process runs."""
        return {"live": True}

    @app.get(
        "/v2/health/ready",
        response_model=ServerReady,
        tags=["v2"],
        responses={503: {"model": ServerReady, "description": "A model is not loaded."}},
    )
    async def server_ready() -> JSONResponse:
        """Readiness: 200 once every model is loaded, else 503."""
        ready = all(served.ready for served in models.values())
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def metadata_of(model_name: str, version: str | None) -> Any:
        """The model's name, versions, platform, inputs and outputs."""
        refused = unknown(model_name, version)
        if refused is not None:
            return refused
        versions = [control.version] if control.version else []
        return {"name": name, "versions": versions, **metadata}

    async def ready_of(model_name: str, version: str | None) -> Response:
        """200 once the model is loaded, else 503."""
        refused = unknown(model_name, version)
        if refused is not None:
            return refused
        ready = all(served.ready for served in models.values())
        return JSONResponse({"name": name, "ready": ready}, status_code=200 if ready else 503)

    async def infer_with(request: Request, model_name: str, version: str | None) -> Response:
        """Predict a batch of named tensors (see the module docstring)."""
        refused = unknown(model_name, version)
        if refused is not None:
            return refused
        answer = inference.answer(await request.body(), request.headers.get(HEADER_LENGTH))
        if answer.variant is not None:
            request.scope[VARIANT_KEY] = answer.variant
        return answer.response()

    # The same three routes with and without a version in the path.
    async def model_metadata(model_name: str) -> Any:
        """The model's name, versions, platform, inputs and outputs."""
        return await metadata_of(model_name, None)

    async def version_metadata(model_name: str, version: str) -> Any:
        """The metadata of one version of the model."""
        return await metadata_of(model_name, version)

    async def model_ready(model_name: str) -> Response:
        """200 once the model is loaded, else 503."""
        return await ready_of(model_name, None)

    async def version_ready(model_name: str, version: str) -> Response:
        """200 once this version is loaded, else 503."""
        return await ready_of(model_name, version)

    async def infer(request: Request, model_name: str) -> Response:
        """Predict a batch of named tensors (see the module docstring)."""
        return await infer_with(request, model_name, None)

    async def version_infer(request: Request, model_name: str, version: str) -> Response:
        """Predict with one version of the model."""
        return await infer_with(request, model_name, version)

    routes = (
        ("/v2/models/{model_name}", model_metadata, model_ready, infer),
        (
            "/v2/models/{model_name}/versions/{version}",
            version_metadata,
            version_ready,
            version_infer,
        ),
    )
    for prefix, metadata_route, ready_route, infer_route in routes:
        app.add_api_route(
            prefix,
            metadata_route,
            methods=["GET"],
            response_model=ModelMetadata,
            responses=ERRORS,
            tags=["v2"],
        )
        app.add_api_route(
            f"{prefix}/ready",
            ready_route,
            methods=["GET"],
            response_model=ModelReady,
            responses={**ERRORS, 503: {"model": ModelReady, "description": "Not loaded."}},
            tags=["v2"],
        )
        # Not in the OpenAPI document: which requests are valid depends on the relations
        # between tensors (names, shapes, data lengths) that JSON Schema cannot state, and
        # the body may be binary. The protocol's own specification documents it.
        app.add_api_route(f"{prefix}/infer", infer_route, methods=["POST"], include_in_schema=False)
    _name_path_parameters(app, name, control)
    model = f"/v2/models/{name}"
    paths = {"/v2", "/v2/health/live", "/v2/health/ready", model, f"{model}/ready", inference.path}
    return V2Routes(paths, inference)


def _split(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON header of a request body and the binary tensor data after it."""
    if header_length is None:
        return body, memoryview(b"")
    try:
        length = int(header_length)
    except ValueError:
        raise TensorError(f"{HEADER_LENGTH} must be an integer, got {header_length!r}") from None
    if not 0 <= length <= len(body):
        raise TensorError(f"{HEADER_LENGTH} {length} is outside the body ({len(body)} bytes)")
    return body[:length], memoryview(body)[length:]


def _first_problem(error: ValidationError) -> str:
    """One line: where the request does not fit the protocol, and why."""
    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem.get("loc", ())) or "body"
    return f"invalid inference request at {where}: {problem.get('msg', 'invalid')}"


def _name_path_parameters(app: FastAPI, name: str, control: ServedModel) -> None:
    """Give the model's name (and loaded version) as the values of the v2 path parameters
    in the OpenAPI document. The routes take any name and answer 404 for another one, as
    the protocol says; the enums tell a client, or a fuzzer, which names exist."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            values = {
                "model_name": [name],
                "version": [control.version] if control.version else None,
            }
            for path, operations in document.get("paths", {}).items():
                if not path.startswith("/v2/models/"):
                    continue
                for operation in operations.values():
                    for parameter in operation.get("parameters", ()):
                        allowed = values.get(parameter["name"])
                        if parameter.get("in") == "path" and allowed:
                            parameter["schema"] = {**parameter["schema"], "enum": allowed}
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
