"""The ASGI layer in front of the service: body limit, request metrics, the predict path.

:class:`ServingMiddleware`

* refuses a body above ``max_body_bytes`` (413) before it is parsed: at once when its
  Content-Length is above the limit, else (a chunked body) as soon as the bytes read pass
  it;
* times and counts every request (``model_requests_total`` and friends);
* answers a valid ``POST /predict`` itself: with ``Content-Type: application/json``, a
  body the route's own request model accepts (``model_validate_json``, one pass in
  pydantic-core) and a valid ``X-User-Id``, it calls the same
  :meth:`~mlgen_runtime.serving.predictor.Predictor.answer` the route calls. FastAPI's
  routing, dependency and body machinery cost more per request than a small model does.
  Every other request, refused ones included, goes on to the FastAPI route with its body
  replayed, so the route alone decides every error answer;
* answers ``POST /v2/models/{name}/infer`` itself too, with the same
  :meth:`~mlgen_runtime.serving.v2.Inference.answer` the v2 route calls (errors included:
  that method builds every answer of the route, the protocol's error objects too).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import TYPE_CHECKING

from pydantic import RootModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlgen_runtime.serving.experiment import NO_VARIANT
from mlgen_runtime.serving.faults import Faults
from mlgen_runtime.serving.metrics import ServingMetrics
from mlgen_runtime.serving.models import MAX_USER_ID_LENGTH
from mlgen_runtime.serving.predictor import INTERNAL_ERROR, Predictor, error_body

if TYPE_CHECKING:
    from mlgen_runtime.serving.v2 import Inference

logger = logging.getLogger("uvicorn.error")
VARIANT_KEY = "mlgen_runtime.variant"
"""The request scope key the predict route sets to the variant that answered."""
PREDICT_PATH = "/predict"


class _Disconnected(Exception):
    """The client disconnected before its request body was read."""


def _headers(scope: Scope) -> tuple[int | None, str | None, str | None]:
    """Content-Length (``None``: absent or unreadable), Content-Type and X-User-Id; the
    first of each, as Starlette's ``request.headers.get`` reads them."""
    length: int | None = None
    content_type = user = None
    seen_length = False
    for name, value in scope["headers"]:
        if name == b"content-length" and not seen_length:
            seen_length = True
            try:
                length = int(value)
            except ValueError:
                length = None
        elif name == b"content-type" and content_type is None:
            content_type = value.decode("latin-1")
        elif name == b"x-user-id" and user is None:
            user = value.decode("latin-1")
    return length, content_type, user


def _plain_json(content_type: str | None) -> bool:
    """``application/json`` (parameters allowed): a type FastAPI reads as JSON too."""
    return (
        content_type is not None
        and content_type.partition(";")[0].strip().lower() == "application/json"
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that returns ``body`` once, then what ``receive`` returns."""
    pending: Message | None = {"type": "http.request", "body": body, "more_body": False}

    async def replay() -> Message:
        nonlocal pending
        if pending is None:
            return await receive()
        message, pending = pending, None
        return message

    return replay


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of the (lower-case) header ``name``, or ``None``."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _send_json(send: Send, status: int, body: bytes, close: bool = False) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:  # the rest of an oversized body is not read
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send(
    send: Send, status: int, body: bytes, media_type: str, extra: dict[str, str]
) -> None:
    headers = [
        (b"content-type", media_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
        *((key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in extra.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ServingMiddleware:
    """See the module docstring.

    Args:
        app: the FastAPI app (its inner middleware stack).
        metrics: where requests are counted.
        max_body_bytes: the largest request body.
        predictor: answers valid predictions.
        request_model: the route's request model (``PredictRequest``).
        endpoints: the paths counted under their own name (others count as ``other``).
        fast_path: answer valid predictions here (off: every request goes to FastAPI).
        faults: TEST-ONLY latency and errors for prediction requests (:mod:`.faults`).
        v2: the model's v2 inference, whose unversioned ``infer`` path is answered here
            too (with ``fast_path``).
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: ServingMetrics,
        max_body_bytes: int,
        predictor: Predictor,
        request_model: type[RootModel],  # type: ignore[type-arg]
        endpoints: Collection[str],
        fast_path: bool = True,
        faults: Faults | None = None,
        v2: Inference | None = None,
    ) -> None:
        self.app = app
        self.v2 = v2 if fast_path else None
        self.v2_path = None if self.v2 is None else self.v2.path
        self.faults = faults
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.predictor = predictor
        self.parse = request_model.model_validate_json
        self.endpoints = frozenset(endpoints)
        self.fast_path = fast_path
        self.too_large = error_body(
            f"request body larger than MAX_BODY_BYTES ({max_body_bytes} bytes)"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = path if path in self.endpoints else "other"
        status = 500  # what the client gets if the app raises before responding
        variant = NO_VARIANT
        started = time.perf_counter()

        async def send_and_record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            length, content_type, user = _headers(scope)
            method = scope["method"]
            if length is not None and length > self.max_body_bytes:
                await _send_json(send_and_record_status, 413, self.too_large, close=True)
            elif path == self.v2_path and method == "POST" and self.v2 is not None:
                body = await self._read_body(receive)
                if body is None:
                    await _send_json(send_and_record_status, 413, self.too_large, close=True)
                    return
                inferred = self.v2.answer(body, _header(scope, b"inference-header-content-length"))
                status, variant = inferred.status, inferred.variant or NO_VARIANT
                await _send(send, status, inferred.body, inferred.media_type, inferred.headers)
            elif (path == PREDICT_PATH and method == "POST") or (
                length is None and method not in ("GET", "HEAD")
            ):
                body = await self._read_body(receive)
                if body is None:
                    await _send_json(send_and_record_status, 413, self.too_large, close=True)
                    return
                answer = None
                predict = path == PREDICT_PATH and method == "POST"
                if predict and self.faults is not None and await self.faults.inject():
                    answer = 500, INTERNAL_ERROR, NO_VARIANT
                elif predict and self.fast_path:
                    answer = self._fast_answer(body, content_type, user)
                if answer is None:
                    await self.app(scope, _replay(body, receive), send_and_record_status)
                else:
                    status, payload, variant = answer
                    await _send_json(send, status, payload)
            else:
                await self.app(scope, receive, send_and_record_status)
        except _Disconnected:
            status = 499  # the client went away; nobody to answer
        finally:
            variant = scope.get(VARIANT_KEY, variant)
            self.metrics.observe_request(endpoint, status, variant, time.perf_counter() - started)

    def _fast_answer(
        self, body: bytes, content_type: str | None, user: str | None
    ) -> tuple[int, bytes, str] | None:
        """The answer to a valid prediction request; ``None`` for anything else (the
        route then answers, with its own error for whatever is wrong)."""
        if not _plain_json(content_type):
            return None
        if user is not None and not 1 <= len(user) <= MAX_USER_ID_LENGTH:
            return None
        try:
            payload = self.parse(body).root
        except ValidationError:
            return None
        try:
            return self.predictor.answer(payload, user)
        except Exception:
            logger.exception("unexpected error in POST %s", PREDICT_PATH)
            return 500, INTERNAL_ERROR, NO_VARIANT

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole request body, or ``None`` when it passes ``max_body_bytes``."""
        message = await receive()
        if message["type"] != "http.request":
            raise _Disconnected
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):  # the usual case: one message
            return body if len(body) <= self.max_body_bytes else None
        chunks, size = [body], len(body)
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
