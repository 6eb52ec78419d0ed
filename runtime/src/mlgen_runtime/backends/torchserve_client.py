"""A client of a model served by TorchServe's inference API (standard library only).

``POST /predictions/<model>`` with one feature object or ``{"instances": [...]}`` (the
body :class:`~mlgen_runtime.backends.torchserve_handler.SchemaHandler` reads), answered
with ``{"predictions": [{"probability", "label"}...], "model_version"}``. A TorchServe
repository's ``serving/client.py`` binds :class:`Client` to its model name::

    client = Client("http://127.0.0.1:8080", "churn", token=None)  # token: the inference key
    client.predict({"tenure_months": 7, ...})                       # -> Response(...)
    client.predict([row1, row2])                                    # one request, a batch

With token authorization on (the production config), pass the inference key from the
server's ``key_file.json`` (:func:`read_key`); it is sent as ``Authorization: Bearer``.
Requests never go through an HTTP proxy from the environment.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "Client", "ClientError", "Prediction", "Response", "read_key"]

DEFAULT_TIMEOUT_SECONDS = 10.0
# Never send model traffic through an HTTP proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ClientError(RuntimeError):
    """The server refused the request or could not be reached.

    ``status`` is the HTTP status (0 when there was no answer) and ``body`` the
    decoded answer (TorchServe's ``{"code", "type", "message"}``, plus ``problems``
    for invalid input).
    """

    def __init__(self, status: int, body: Any, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one example."""

    probability: float
    label: int


@dataclass(frozen=True)
class Response:
    """Predictions in request order, and the version of the model that made them."""

    predictions: list[Prediction]
    model_version: str


def read_key(key_file: Path, kind: str = "inference") -> str:
    """The ``inference`` (or ``management``) key from a TorchServe ``key_file.json``."""
    keys = json.loads(Path(key_file).read_text(encoding="utf-8"))
    return str(keys[kind]["key"])


class Client:
    """Calls one TorchServe server's inference API for one model."""

    def __init__(
        self,
        base_url: str,
        model_name: str,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.model_name = model_name
        self.timeout = timeout

    def predict(self, rows: Mapping[str, float] | Sequence[Mapping[str, float]]) -> Response:
        """Predict one example (a mapping) or a batch (a sequence of mappings).

        Raises:
            ClientError: any answer but 200 (400: invalid input, with ``problems``), or
                no answer within the timeout.
        """
        body: Any = (
            {"instances": [dict(row) for row in rows]}
            if not isinstance(rows, Mapping)
            else dict(rows)
        )
        status, answer = self.request("POST", f"/predictions/{self.model_name}", body)
        if status != 200:
            message = answer.get("message") if isinstance(answer, dict) else answer
            raise ClientError(
                status, answer, f"POST /predictions/{self.model_name}: {status} {message}"
            )
        try:
            predictions = [
                Prediction(float(p["probability"]), int(p["label"])) for p in answer["predictions"]
            ]
            return Response(predictions, str(answer["model_version"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ClientError(status, answer, f"unexpected answer {answer!r}: {error}") from None

    def ping(self) -> bool:
        """Whether TorchServe says it is Healthy (``GET /ping``)."""
        try:
            status, answer = self.request("GET", "/ping")
        except ClientError:
            return False
        return status == 200 and isinstance(answer, dict) and answer.get("status") == "Healthy"

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One HTTP request; the status and the decoded JSON answer (text if not JSON)."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            f"{self.base_url}{path}", data=data, headers=headers, method=method
        )
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except (OSError, TimeoutError) as error:
            raise ClientError(0, None, f"{method} {self.base_url}{path}: {error}") from None
        text = raw.decode("utf-8", "replace")
        try:
            return status, json.loads(text)
        except json.JSONDecodeError:
            return status, text
