"""A client of TF Serving's REST API for one model (standard library only).

A TF Serving repository's ``serving/client.py`` binds it to its model name and feature
schema (:class:`~mlgen_runtime.schema.FeatureSchema`)::

    from mlgen_runtime.backends.tfserving_client import TFServingClient

    client = TFServingClient("http://127.0.0.1:8501", "churn", SCHEMA)
    client.predict([SCHEMA.example_row()])   # [Prediction(probability=0.91..., label=1)]

Requests go to TF Serving's own endpoints:

* ``POST /v1/models/<name>[/versions/N]:predict`` with
  ``{"signature_name": "serving_default", "instances": [{<feature>: <value>, ...}]}``: one
  object per example, keyed by the schema's feature names (the SavedModel's signature has
  one input per feature): a number, or a string category's level as a string. TF
  Serving decodes no JSON ``null``, so a null is sent as ``""`` for a string category and
  as ``NaN`` (a literal TF Serving's REST API accepts) for a number; the signature
  imputes both as training did. The answer is ``{"predictions": [{"probability": p, "label": l},
  ...]}``, in request order.
* ``GET /v1/models/<name>``: the versions and their state (``AVAILABLE``, ``LOADING``,
  ...). It answers 200 while a version is still loading.
* ``GET /v1/models/<name>/metadata``: the signatures; 200 only once a version serves.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mlgen_runtime.schema import FeatureSchema

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "SIGNATURE_NAME",
    "URL_ENV",
    "Prediction",
    "TFServingClient",
    "TFServingError",
    "main",
    "model_path",
    "parse_predictions",
    "predict_request",
]

DEFAULT_URL = "http://127.0.0.1:8501"
URL_ENV = "TFSERVING_URL"
"""Environment variable with the server's base URL (default :data:`DEFAULT_URL`)."""
SIGNATURE_NAME = "serving_default"
DEFAULT_TIMEOUT = 10.0
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one example."""

    probability: float
    """Probability of the positive class."""
    label: int
    """1 when ``probability >= DECISION_THRESHOLD``, else 0 (computed in the model)."""


class TFServingError(RuntimeError):
    """TF Serving refused a request, answered something unexpected, or was unreachable."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message if status is None else f"HTTP {status}: {message}")
        self.status = status


def model_path(model_name: str, version: int | None = None) -> str:
    """``/v1/models/<name>[/versions/<version>]``."""
    path = f"/v1/models/{urllib.parse.quote(model_name, safe='')}"
    return path if version is None else f"{path}/versions/{int(version)}"


def predict_request(rows: Sequence[Mapping[str, Any]], schema: FeatureSchema) -> dict[str, Any]:
    """The ``:predict`` body for raw ``rows`` (TF Serving's row format, the inputs named as
    the ``schema``'s features; strings for string categories, nulls as ``""`` or NaN).

    Raises:
        ValueError: a row lacks a feature, has an unknown one, a null where the schema
            allows none, a value out of its range or, under ``unknown: reject``, a
            string that is no level (checked here, before anything is sent; the server
            checks types only).
    """
    if not rows:
        raise ValueError("at least one row is needed")
    schema.to_matrix(rows)  # validates names, nulls, levels and ranges
    instances = [
        {feature.name: _instance_value(feature, row[feature.name]) for feature in schema.features}
        for row in rows
    ]
    return {"signature_name": SIGNATURE_NAME, "instances": instances}


def _instance_value(feature: Any, value: Any) -> str | float:
    """A raw value as the signature's input takes it (a null as ``""`` or NaN)."""
    null = value is None or (isinstance(value, float) and math.isnan(value))
    if feature.string_levels:
        return "" if null else str(value)
    return math.nan if null else float(value)


def parse_predictions(body: Any, count: int) -> list[Prediction]:
    """The predictions of a ``:predict`` answer for ``count`` examples.

    Raises:
        TFServingError: the answer is not ``{"predictions": [{"probability", "label"}...]}``
            with ``count`` entries.
    """
    try:
        predictions = body["predictions"]
        if len(predictions) != count:
            raise ValueError(f"{len(predictions)} predictions for {count} examples")
        parsed = [
            Prediction(float(item["probability"]), int(item["label"])) for item in predictions
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise TFServingError(f"unexpected :predict answer {str(body)[:300]}: {error}") from None
    for prediction in parsed:
        if not (math.isfinite(prediction.probability) and 0.0 <= prediction.probability <= 1.0):
            raise TFServingError(f"probability {prediction.probability} is not in [0, 1]")
    return parsed


class TFServingClient:
    """TF Serving's REST API for one model (and optionally one version of it).

    ``url`` defaults to ``$TFSERVING_URL``, else ``default_url``; requests to loopback
    never go through a proxy from the environment.
    """

    def __init__(
        self,
        url: str | None,
        model_name: str,
        schema: FeatureSchema,
        version: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        default_url: str = DEFAULT_URL,
    ) -> None:
        self.url = (url or os.environ.get(URL_ENV) or default_url).rstrip("/")
        self.model_name = model_name
        self.schema = schema
        self.version = version
        self.timeout = timeout
        host = urllib.parse.urlsplit(self.url).hostname or ""
        # Loopback requests never go through an HTTP proxy from the environment.
        handlers = [urllib.request.ProxyHandler({})] if host in _LOOPBACK else []
        self._opener = urllib.request.build_opener(*handlers)

    # ---------------------------------------------------------------- API
    def predict(self, rows: Sequence[Mapping[str, float]]) -> list[Prediction]:
        """Predictions for ``rows`` (feature name -> value), in order, in one request."""
        body = predict_request(rows, self.schema)
        answer = self._call("POST", f"{model_path(self.model_name, self.version)}:predict", body)
        return parse_predictions(answer, len(rows))

    def status(self) -> dict[str, Any]:
        """``GET /v1/models/<name>``: ``{"model_version_status": [{"version", "state", ...}]}``."""
        return dict(self._call("GET", model_path(self.model_name, self.version)))

    def metadata(self) -> dict[str, Any]:
        """``GET .../metadata``: the model spec and its signatures (SignatureDefs as JSON)."""
        return dict(self._call("GET", f"{model_path(self.model_name, self.version)}/metadata"))

    def is_ready(self) -> bool:
        """True when a version serves: the metadata endpoint answers 200."""
        try:
            self.metadata()
        except TFServingError:
            return False
        return True

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            text = error.read().decode("utf-8", "replace")
            try:
                message = json.loads(text).get("error", text)
            except (ValueError, AttributeError):
                message = text
            raise TFServingError(str(message).strip() or error.reason, error.code) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            raise TFServingError(f"{method} {self.url}{path} failed: {error}") from None
        except ValueError as error:  # not JSON
            raise TFServingError(f"{method} {path}: the answer is not JSON ({error})") from None


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str,
    model_name: str,
    schema: FeatureSchema,
    default_url: str = DEFAULT_URL,
) -> int:
    """A repository's client command: predict the given rows (JSON objects), or the
    schema's example row, and print the predictions as JSON; exit status 1 with
    ``error: <reason>`` on an invalid row or a failed request."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Send rows to TF Serving's :predict endpoint and print the predictions.",
    )
    parser.add_argument(
        "rows", nargs="*", help="JSON objects, one per example (default: the example row)"
    )
    parser.add_argument("--url", help=f"server base URL (default: ${URL_ENV} or {default_url})")
    parser.add_argument("--version", type=int, help="a model version (default: the served one)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    args = parser.parse_args(argv)
    client = TFServingClient(
        args.url, model_name, schema, args.version, args.timeout, default_url=default_url
    )
    try:
        rows = [json.loads(row) for row in args.rows] or [schema.example_row()]
        predictions = client.predict(rows)
    except (ValueError, TFServingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps([asdict(prediction) for prediction in predictions]))
    return 0
