"""A small Open Inference Protocol (KServe v2 REST) client, for every backend that speaks it.

The runtime's own service (:mod:`mlgen_runtime.serving.v2`), Triton and KServe's model
server answer the same routes, so one client serves a repository's smoke test and its
callers whichever backend runs. It reads the model's metadata once and sends what the
model takes: one tensor per feature when the inputs are the schema's features (raw
values from :meth:`InferenceClient.infer_rows`: ``BYTES`` for string categories, ``null``
for a null), or the whole ``[n, width]`` matrix when the model has a single
two-dimensional input (the ONNX graph's ``features`` that Triton and KServe serve). The
probability of the positive class is read from ``probabilities`` (``[n, 2]``, column 1)
or ``probability`` (``[n]``). Standard library and numpy only (no ``tritonclient``
needed); never through a proxy from the environment.

Usage::

    client = InferenceClient("http://127.0.0.1:8000", "churn")
    client.wait_ready(timeout=30)
    result = client.infer_matrix(schema.to_matrix(rows))
    result.probabilities  # numpy array, one per row

Command line (rows as JSON objects; default: the schema's example row)::

    python -m mlgen_runtime.inference_client --url http://127.0.0.1:8000 --model churn \
        --schema churn.features:SCHEMA ['{"tenure_months": 7, ...}']
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import numpy as np

from mlgen_runtime.datatypes import NUMBER_TYPES
from mlgen_runtime.schema import FeatureSchema

DEFAULT_TIMEOUT_SECONDS = 10.0
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ClientError(RuntimeError):
    """The server refused the request or answered something the client cannot read.

    Attributes:
        status: the HTTP status (``None``: no answer).
        body: the decoded answer (the protocol's ``{"error": ...}`` object, usually).
    """

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class InferResult:
    """The answer to an inference request, rows in request order.

    Attributes:
        probabilities: the positive-class probability of each row (``float64``).
        labels: the predicted class of each row, when the model returns ``label``.
        model_version: the version that answered, when the server says.
        request_id: the ``id`` the server echoed.
        parameters: the response's parameters (the runtime's service names its A/B
            ``variant`` there).
    """

    probabilities: np.ndarray
    labels: np.ndarray | None
    model_version: str | None
    request_id: str | None
    parameters: Mapping[str, Any]


class InferenceClient:
    """Talks v2 to the model ``model_name`` at ``base_url`` (``http://host:port``).

    Args:
        base_url: the server's base URL.
        model_name: the model's name in the server's routes.
        timeout: seconds per HTTP request.
        max_batch_size: split larger requests into batches of this many rows.
    """

    def __init__(
        self,
        base_url: str,
        model_name: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_batch_size: int | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.timeout = timeout
        self.max_batch_size = max_batch_size
        self._metadata: dict[str, Any] | None = None

    # ------------------------------------------------------------------ HTTP
    def request(self, path: str, payload: Any = None) -> tuple[int, Any]:
        """GET ``path`` (or POST ``payload`` as JSON) on the server; the status and the
        decoded body (text when it is not JSON). An error status is returned, not raised
        (a test sends malformed bodies this way); no answer raises :class:`ClientError`."""
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=data,
            headers={"Content-Type": "application/json"} if data is not None else {},
            method="GET" if data is None else "POST",
        )
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except OSError as error:
            raise ClientError(f"no answer from {self.base_url}{path}: {error}") from error
        try:
            return status, json.loads(raw or b"null")
        except json.JSONDecodeError:
            return status, raw.decode("utf-8", "replace")

    @property
    def _model_path(self) -> str:
        return f"/v2/models/{quote(self.model_name, safe='')}"

    # ------------------------------------------------------------------ health
    def live(self) -> bool:
        """``GET /v2/health/live`` answers 200."""
        return self._status("/v2/health/live") == 200

    def ready(self) -> bool:
        """The server and the model answer ready (``/v2/health/ready``, ``.../ready``)."""
        return (
            self._status("/v2/health/ready") == 200
            and self._status(f"{self._model_path}/ready") == 200
        )

    def _status(self, path: str) -> int | None:
        try:
            return self.request(path)[0]
        except ClientError:
            return None

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.25) -> float:
        """Wait until :meth:`ready`; the seconds waited. Raises :class:`ClientError` after
        ``timeout``."""
        started = time.monotonic()
        while not self.ready():
            if time.monotonic() - started > timeout:
                raise ClientError(
                    f"{self.model_name} at {self.base_url} not ready after {timeout:g} s"
                )
            time.sleep(interval)
        return time.monotonic() - started

    def metadata(self) -> dict[str, Any]:
        """``GET /v2/models/<name>``: the model's inputs and outputs (read once)."""
        if self._metadata is None:
            status, body = self.request(self._model_path)
            if status != 200 or not isinstance(body, dict) or "inputs" not in body:
                raise ClientError(
                    f"no metadata for model {self.model_name!r}: {status} {body!r}", status, body
                )
            self._metadata = body
        return self._metadata

    # ------------------------------------------------------------------ inference
    def infer_rows(
        self,
        rows: Sequence[Mapping[str, Any]],
        schema: FeatureSchema,
        *,
        request_id: str | None = None,
        user_id: str | None = None,
    ) -> InferResult:
        """Predict raw feature rows (``schema.to_matrix`` checks them first).

        A model with one tensor per feature gets the raw values: ``BYTES`` strings for a
        category with string levels (``""`` for a null), numbers (JSON ``null`` for a
        null) for the others; a model with the one matrix input gets the matrix.
        """
        matrix = schema.to_matrix(rows)
        inputs = self.metadata()["inputs"]
        if len(inputs) == 1 and len(inputs[0]["shape"]) == 2:
            return self.infer_matrix(
                matrix, names=schema.names, request_id=request_id, user_id=user_id
            )
        missing = [spec["name"] for spec in inputs if spec["name"] not in schema.names]
        if missing:
            raise ClientError(f"{self.model_name} takes inputs {missing} the rows do not have")
        step = self.max_batch_size or max(1, len(rows))
        parts = []
        for start in range(0, len(rows), step):
            batch = rows[start : start + step]
            tensors = [
                _raw_tensor(spec, [row.get(spec["name"]) for row in batch]) for spec in inputs
            ]
            parts.append(self._send(tensors, len(batch), request_id, user_id))
        return _joined(parts)

    def infer_matrix(
        self,
        matrix: np.ndarray,
        *,
        names: Sequence[str] | None = None,
        request_id: str | None = None,
        user_id: str | None = None,
    ) -> InferResult:
        """Predict the rows of ``matrix`` (``[n, width]``, columns in ``names`` order, the
        schema's; needed when the model takes one tensor per feature).

        Raises:
            ClientError: the server refused the request (the message is its error), or
                its answer has no probabilities.
        """
        matrix = np.asarray(matrix)
        step = self.max_batch_size or max(1, len(matrix))
        parts = [
            self._send(
                self._inputs(matrix[start : start + step], names),
                len(matrix[start : start + step]),
                request_id,
                user_id,
            )
            for start in range(0, len(matrix), step)
        ]
        return _joined(parts)

    def _send(
        self,
        inputs: list[dict[str, Any]],
        rows: int,
        request_id: str | None,
        user_id: str | None,
    ) -> InferResult:
        payload: dict[str, Any] = {"id": request_id or uuid.uuid4().hex, "inputs": inputs}
        if user_id is not None:
            payload["parameters"] = {"user_id": user_id}
        status, body = self.request(f"{self._model_path}/infer", payload)
        if status != 200 or not isinstance(body, dict):
            message = body.get("error", body) if isinstance(body, dict) else body
            raise ClientError(f"inference failed ({status}): {message}", status, body)
        return self._result(body, rows)

    def _inputs(self, batch: np.ndarray, names: Sequence[str] | None) -> list[dict[str, Any]]:
        """The request's tensors, as the model's metadata asks."""
        inputs = self.metadata()["inputs"]
        if len(inputs) == 1 and len(inputs[0]["shape"]) == 2:
            (spec,) = inputs
            values = batch.astype(NUMBER_TYPES.get(spec["datatype"], np.float32))
            return [_tensor(spec, values)]
        if names is None:
            raise ClientError(
                f"{self.model_name} takes one tensor per feature: pass the feature names"
            )
        columns = {name: index for index, name in enumerate(names)}
        missing = [spec["name"] for spec in inputs if spec["name"] not in columns]
        if missing:
            raise ClientError(f"{self.model_name} takes inputs {missing} the rows do not have")
        return [
            _tensor(
                spec,
                batch[:, columns[spec["name"]]].astype(
                    NUMBER_TYPES.get(spec["datatype"], np.float32)
                ),
            )
            for spec in inputs
        ]

    @staticmethod
    def _result(body: Mapping[str, Any], rows: int) -> InferResult:
        outputs = {output["name"]: output for output in body.get("outputs", [])}
        try:
            if "probabilities" in outputs:
                values = np.asarray(outputs["probabilities"]["data"], dtype=np.float64)
                probabilities = values.reshape(rows, -1)[:, -1]
            else:
                probabilities = np.asarray(
                    outputs["probability"]["data"], dtype=np.float64
                ).reshape(rows)
            labels = (
                np.asarray(outputs["label"]["data"], dtype=np.int64).reshape(rows)
                if "label" in outputs
                else None
            )
        except (KeyError, ValueError, TypeError) as error:
            raise ClientError(
                f"the answer has no probabilities for {rows} rows: {error!r}", 200, body
            ) from None
        return InferResult(
            probabilities=probabilities,
            labels=labels,
            model_version=body.get("model_version"),
            request_id=body.get("id"),
            parameters=body.get("parameters") or {},
        )


def _tensor(spec: Mapping[str, Any], values: np.ndarray) -> dict[str, Any]:
    """One JSON input tensor of ``values`` with the name and datatype of ``spec``."""
    return {
        "name": spec["name"],
        "shape": list(values.shape),
        "datatype": spec["datatype"],
        "data": values.reshape(-1).tolist(),
    }


def _raw_tensor(spec: Mapping[str, Any], values: Sequence[Any]) -> dict[str, Any]:
    """One JSON input tensor of raw values: strings for ``BYTES`` (``""`` for a null),
    numbers for the others (integers for an integer datatype, NaN for a null float:
    the protocol has no null, and Triton's parser refuses JSON ``null`` in a number
    tensor). Its shape is ``[n, 1]`` where the metadata's has two dimensions
    (Triton's ``dims: [ 1 ]`` with a batch dimension), else ``[n]``."""
    datatype = spec["datatype"]
    data: list[Any]
    if datatype == "BYTES":
        data = ["" if _null(value) else str(value) for value in values]
    elif datatype.startswith(("INT", "UINT")):
        data = [None if _null(value) else int(value) for value in values]
    else:
        data = [math.nan if _null(value) else float(value) for value in values]
    shape = [len(data), 1] if len(spec.get("shape", ())) == 2 else [len(data)]
    return {"name": spec["name"], "shape": shape, "datatype": datatype, "data": data}


def _null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _joined(parts: Sequence[InferResult]) -> InferResult:
    """One result of the results of consecutive batches."""
    labels = [part.labels for part in parts]
    return InferResult(
        probabilities=np.concatenate([part.probabilities for part in parts]),
        labels=None if any(label is None for label in labels) else np.concatenate(labels),  # type: ignore[arg-type]
        model_version=parts[-1].model_version,
        request_id=parts[-1].request_id,
        parameters=parts[-1].parameters,
    )


def _load_schema(reference: str) -> FeatureSchema:
    """The :class:`FeatureSchema` named ``module:attribute``."""
    module, _, attribute = reference.partition(":")
    schema = getattr(importlib.import_module(module), attribute or "SCHEMA")
    if not isinstance(schema, FeatureSchema):
        raise TypeError(f"{reference} is not a FeatureSchema")
    return schema


def main(argv: Sequence[str] | None = None) -> int:
    """Predict rows given as JSON objects; one JSON line per row. Exit status 1 when the
    rows are invalid or the server refuses them."""
    parser = argparse.ArgumentParser(
        prog="python -m mlgen_runtime.inference_client",
        description="Predict rows through the Open Inference Protocol (KServe v2 REST).",
    )
    parser.add_argument("rows", nargs="*", help="JSON objects with every feature")
    parser.add_argument("--url", required=True, help="the server's base URL (http://host:port)")
    parser.add_argument("--model", required=True, help="the model's name")
    parser.add_argument(
        "--schema", required=True, help="the feature schema, module:attribute (pkg.features:SCHEMA)"
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS)
    args = parser.parse_args(argv)
    schema = _load_schema(args.schema)
    rows = [json.loads(text) for text in args.rows] or [schema.example_row()]
    client = InferenceClient(args.url, args.model, timeout=args.timeout)
    try:
        result = client.infer_rows(rows, schema)
    except (ValueError, ClientError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    labels = [None] * len(rows) if result.labels is None else result.labels.tolist()
    for row, probability, label in zip(rows, result.probabilities.tolist(), labels, strict=True):
        print(json.dumps({"row": row, "probability": probability, "label": label}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
