"""The service: FastAPI routes on a feature schema and a model file.

:func:`create_app` builds it. Endpoints:

* ``POST /predict``: one feature object, or ``{"instances": [...]}`` for a batch;
  optionally a ``user_id`` (or an ``X-User-Id`` header) for A/B routing;
* ``GET /health``: liveness (200 while the process runs);
* ``GET /ready``: readiness (200 once every configured model is loaded, else 503);
* ``GET /metrics``: Prometheus metrics (:mod:`.metrics`, :mod:`.online_drift`);
* ``/v2/...``: the Open Inference Protocol (KServe v2 REST), :mod:`.v2`;
* ``GET /openapi.json`` and ``/docs``: the schema of the routes above.

The service starts even when a model is missing or unreadable: it logs one line,
``/ready`` and ``/predict`` answer 503, and ``model_loaded`` is 0. A malformed request
never gets a 5xx: a body above the limit gets 413 before it is read, a body that is not
JSON (by its Content-Type) 415, one FastAPI cannot parse 400, anything else that does not
fit the schema 422.
"""

# No ``from __future__ import annotations``: FastAPI reads the annotations of the routes
# defined inside create_app as real objects.

import email.message
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from mlgen_runtime.schema import FeatureSchema
from mlgen_runtime.serving.experiment import CONTROL, TREATMENT, Experiment
from mlgen_runtime.serving.fast_path import VARIANT_KEY, ServingMiddleware
from mlgen_runtime.serving.faults import Faults
from mlgen_runtime.serving.metrics import ServingMetrics
from mlgen_runtime.serving.model import ModelFile, ServedModel, logger
from mlgen_runtime.serving.models import (
    MAX_USER_ID_LENGTH,
    UNION_TAGS,
    USER_ID_HEADER,
    ErrorResponse,
    HealthResponse,
    ReadyResponse,
    ValidationErrorResponse,
    request_models,
    response_models,
)
from mlgen_runtime.serving.online_drift import (
    DEFAULT_WINDOW_ROWS,
    MIN_ROWS,
    OnlineDrift,
    ProfileError,
)
from mlgen_runtime.serving.predictor import Predictor
from mlgen_runtime.serving.v2 import add_v2_routes

DEFAULT_MAX_BATCH_SIZE = 256
DEFAULT_MAX_BODY_BYTES = 1 << 20
JSON = "application/json"


def problem_list(errors: Any, codes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Location, message and type of each validation problem (never the raw input, which
    may hold NaN or other values JSON cannot encode). ``codes`` holds the categorical
    features' codes or string levels, named in the message of a value that is not one."""
    problems = []
    for item in errors:
        location = [part for part in item.get("loc", ()) if part not in UNION_TAGS]
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        if item.get("type") == "multiple_of" and location and location[-1] in codes:
            message = f"{location[-1]} must be one of the integer codes {codes[location[-1]]}"
        elif item.get("type") == "literal_error" and location and location[-1] in codes:
            message = f"{location[-1]} must be one of {codes[location[-1]]}"
        detail = (item.get("ctx") or {}).get("error")
        if item.get("type") == "json_invalid" and isinstance(detail, str) and detail not in message:
            message = f"{message}: {detail}"
        problems.append({"loc": location, "msg": message, "type": item.get("type")})
    return problems


def require_json(request: Request) -> None:
    """Refuse (415) a body whose Content-Type is not JSON, as FastAPI reads it (a missing
    Content-Type is not JSON: FastAPI's strict content type, against cross-site posts)."""
    message = email.message.Message()
    message["content-type"] = request.headers.get("content-type", "")
    subtype = message.get_content_subtype()
    if not request.headers.get("content-type") or not (
        message.get_content_maintype() == "application"
        and (subtype == "json" or subtype.endswith("+json"))
    ):
        raise HTTPException(415, f"the body must be JSON (Content-Type: {JSON})")


def create_app(
    *,
    schema: FeatureSchema,
    model: ModelFile,
    title: str = "model",
    version: str = "0.1.0",
    description: str | None = None,
    decision_threshold: float = 0.5,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    experiment: Experiment | None = None,
    reference_profile: Path | None = None,
    drift_window_rows: int = DEFAULT_WINDOW_ROWS,
    drift_min_rows: int = MIN_ROWS,
    latency_slo_seconds: float | None = None,
    fast_path: bool = True,
    faults: Faults | None = None,
) -> FastAPI:
    """Build the service; its models are loaded when the app starts (its lifespan).

    Args:
        schema: the model's features: the request models and the input matrix.
        model: the (control) model.
        title: the API's title and the model's name in log lines.
        version: the API's version (the repository's package version).
        description: the API's description.
        decision_threshold: a probability at or above it is label 1.
        max_batch_size: the most instances a batch may hold.
        max_body_bytes: the largest request body (413 above it).
        experiment: an A/B experiment; its treatment model is opened with
            ``model.load``.
        reference_profile: the training profile for online drift (``None``: off). A
            missing or unreadable profile turns online drift off with one log line.
        drift_window_rows: rows per block of the online drift window.
        drift_min_rows: PSI is exported once the window holds this many rows.
        latency_slo_seconds: the p95 latency objective, a bound of the latency histogram.
        fast_path: answer valid predictions in front of FastAPI (see :mod:`.fast_path`);
            off, the route answers every request (same answers, slower).
        faults: TEST-ONLY injected latency and errors (:mod:`.faults`); ``None``, the
            default, injects nothing.

    Raises:
        ValueError: a limit is not positive.
    """
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
    models = {CONTROL: ServedModel(model, CONTROL)}
    if experiment is not None:
        models[TREATMENT] = ServedModel(
            ModelFile(experiment.treatment_model_path, model.load, experiment.treatment_version),
            TREATMENT,
        )
    requests = request_models(schema, max_batch_size)
    response_type, response_adapter = response_models(decision_threshold)
    metrics = ServingMetrics(list(models), latency_slo_seconds)
    predictor = Predictor(
        schema,
        models,
        experiment,
        requests.batch,
        response_adapter,
        metrics,
        decision_threshold,
        title,
    )
    codes: dict[str, list[Any]] = {
        feature.name: list(feature.levels) for feature in schema.features if feature.levels
    }
    example = schema.to_matrix([schema.example_row()])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for served in models.values():
            served.load(example, title)
        metrics.loaded.set(1 if all(served.ready for served in models.values()) else 0)
        if experiment is not None:
            logger.info(
                "%s A/B experiment %r: treatment share %g",
                title,
                experiment.name,
                experiment.treatment_share,
            )
        monitor = _online_drift(reference_profile, schema, drift_window_rows, drift_min_rows, title)
        predictor.drift = app.state.online_drift = monitor
        if monitor is not None:
            metrics.registry.register(monitor)
        try:
            yield
        finally:
            metrics.loaded.set(0)
            predictor.drift = app.state.online_drift = None
            if monitor is not None:
                metrics.registry.unregister(monitor)

    app = FastAPI(
        title=title,
        version=version,
        description=description or f"Predictions of the {title} model.",
        lifespan=lifespan,
    )
    app.state.models = models
    app.state.experiment = experiment
    app.state.metrics = metrics
    app.state.predictor = predictor
    app.state.online_drift = None

    async def on_validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)  # registered for that type only
        return JSONResponse({"detail": problem_list(error.errors(), codes)}, status_code=422)

    async def on_unexpected_error(request: Request, error: Exception) -> JSONResponse:
        # The server logs the traceback (Starlette re-raises after this handler answers).
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected_error)
    PredictRequest = requests.request

    @app.post(
        "/predict",
        response_model=response_type,
        dependencies=[Depends(require_json)],
        responses={
            400: {"model": ErrorResponse, "description": "The body cannot be parsed."},
            413: {"model": ErrorResponse, "description": "The body is above MAX_BODY_BYTES."},
            415: {"model": ErrorResponse, "description": "The body is not JSON."},
            422: {
                "model": ValidationErrorResponse,
                "description": "The body or the X-User-Id header does not fit the schema.",
            },
            500: {"model": ErrorResponse, "description": "The model failed."},
            503: {"model": ErrorResponse, "description": "The model is not loaded."},
        },
    )
    async def predict(
        payload: PredictRequest,  # type: ignore[valid-type]  # built above, per app
        request: Request,
        user: Annotated[
            str | None,
            Header(
                alias=USER_ID_HEADER,
                min_length=1,
                max_length=MAX_USER_ID_LENGTH,
                description="The user's id, when the body has no user_id (A/B routing).",
            ),
        ] = None,
    ) -> Response:
        """Predict the positive-class probability of one example or of a batch.

        With a ``user_id`` (in the body, else the ``X-User-Id`` header) the request is
        routed to its A/B variant; the answer names the variant.
        """
        status, body, variant = predictor.answer(payload.root, user)  # type: ignore[attr-defined]
        request.scope[VARIANT_KEY] = variant
        return Response(body, status_code=status, media_type=JSON)

    @app.get("/health", response_model=HealthResponse)
    async def health() -> dict[str, str]:
        """Liveness: the process is up."""
        return {"status": "ok"}

    @app.get(
        "/ready",
        response_model=ReadyResponse,
        response_model_exclude_none=True,
        responses={503: {"model": ReadyResponse, "description": "A model is not loaded."}},
    )
    async def ready() -> JSONResponse:
        """Readiness: 200 once every model is loaded, 503 (with the reason) otherwise."""
        extra: dict[str, Any] = {}
        if experiment is not None:
            extra = {
                "experiment": experiment.name,
                "variants": {name: served.version for name, served in models.items()},
            }
        if all(served.ready for served in models.values()):
            return JSONResponse(
                {"status": "ready", "model_version": models[CONTROL].version, **extra}
            )
        reason = "; ".join(served.error for served in models.values() if served.error)
        return JSONResponse({"status": "not ready", "reason": reason, **extra}, status_code=503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics of this app."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    v2 = add_v2_routes(
        app,
        name=title,
        schema=schema,
        models=models,
        predictor=predictor,
        decision_threshold=decision_threshold,
        max_batch_size=max_batch_size,
        server_version=version,
    )
    app.add_middleware(
        ServingMiddleware,
        metrics=metrics,
        max_body_bytes=max_body_bytes,
        predictor=predictor,
        request_model=PredictRequest,
        endpoints={route.path for route in app.routes if hasattr(route, "path")} | v2.paths,
        fast_path=fast_path,
        faults=faults,
        v2=v2.inference,
    )
    if faults is not None:
        logger.warning("%s TEST-ONLY fault injection ON: %s", title, faults)
    return app


def _online_drift(
    path: Path | None, schema: FeatureSchema, window_rows: int, min_rows: int, name: str
) -> OnlineDrift | None:
    """The online drift monitor, or ``None`` (with one log line saying why)."""
    if path is None:
        logger.info("%s online drift off", name)
        return None
    if not Path(path).is_file():
        logger.warning("%s online drift OFF: reference profile not found: %s", name, path)
        return None
    try:
        monitor = OnlineDrift.from_file(Path(path), schema.names, window_rows, min_rows)
    except (ProfileError, ValueError) as error:
        logger.warning("%s online drift OFF: %s", name, error)
        return None
    logger.info("%s online drift on: %s, window %d rows", name, path, window_rows)
    return monitor
