"""TorchServe's handler of a model exported to TorchScript with its feature schema.

Needs torch and TorchServe's ``ts`` package (a TorchServe worker has both). A repository's
``serving/handler.py`` defines one subclass of :class:`SchemaHandler` (TorchServe's loader
takes the one class a handler module defines); the feature schema comes from the model
file itself (``mlgen.json``, stored by :mod:`mlgen_runtime.export.torchscript`), so the
archive needs nothing else from the repository.

A model exported with its preprocessing (:mod:`mlgen_runtime.export.torchscript_inputs`:
the module has ``forward_raw``) gets the checked raw values and encodes them itself, with
the vocabulary and imputed values it carries; an older export gets rows encoded here
from the schema's ``levels`` and ``fill``.

Answer: ``200 {"predictions": [{"probability": p, "label": 0|1}, ...], "model_version": v}``
in request order, or ``400`` with :func:`~.torchserve_requests.invalid_answer`.
``model_version`` is ``$MODEL_VERSION`` when set, else ``sha256-`` and the first 12 hex
digits of ``model.pt``'s SHA-256. Batches hold at most ``$MAX_BATCH_SIZE`` (256) rows.

Metrics (declared in the repository's ``serving/metrics.yaml``):
``model_prediction_probability`` (histogram of the predicted probabilities, at most
:data:`OBSERVED_PER_CALL` evenly spaced ones per worker call) and
``model_handler_duration_seconds`` (time in the handler per worker call).
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from typing import Any

import torch
from ts.metrics.metric_type_enum import MetricTypes
from ts.torch_handler.base_handler import BaseHandler

from mlgen_runtime.backends.torchserve_requests import (
    BAD_REQUEST,
    DEFAULT_MAX_BATCH_SIZE,
    Problem,
    decode_body,
    file_version,
    invalid_answer,
    max_batch_size_from_env,
    parse_rows,
    sampled,
    valid_rows,
)
from mlgen_runtime.export.preprocessing import Column
from mlgen_runtime.export.torchscript_inputs import raw_columns

__all__ = [
    "DEFAULT_MAX_BATCH_SIZE",
    "DURATION_METRIC",
    "OBSERVED_PER_CALL",
    "PROBABILITY_METRIC",
    "SCHEMA_FILE",
    "SchemaHandler",
]

logger = logging.getLogger(__name__)

SCHEMA_FILE = "mlgen.json"
PROBABILITY_METRIC = "model_prediction_probability"
DURATION_METRIC = "model_handler_duration_seconds"
OBSERVED_PER_CALL = 16
"""At most this many probabilities of one worker call go into the histogram: each
observation is a log line the frontend parses (~0.15 ms), so a 256-row batch would
spend more time on metrics than on the model. An evenly spaced sample keeps the
distribution (what output-drift monitoring reads) and costs ~2 ms at most."""


class SchemaHandler(BaseHandler):  # type: ignore[misc]
    """Validates named features, runs the TorchScript model once per worker call."""

    def __init__(self) -> None:
        super().__init__()
        self.schema: dict[str, Any] = {}
        self.features: list[dict[str, Any]] = []
        self.columns: list[Column] = []
        self.encodes_raw = False
        self.threshold = 0.5
        self.version = ""
        self.max_batch_size = DEFAULT_MAX_BATCH_SIZE

    # -------------------------------------------------------------- loading
    def initialize(self, context: Any) -> None:
        """Load ``model.pt`` and its schema; one intra-op thread (the model is tiny)."""
        torch.set_num_threads(1)
        self.max_batch_size = max_batch_size_from_env()
        super().initialize(context)
        self.features = list(self.schema.get("features", []))
        if not self.features:
            raise RuntimeError(
                f"{self.model_pt_path} has no feature schema ({SCHEMA_FILE}): "
                "export it with mlgen_runtime.export.torchscript"
            )
        self.columns = [Column.from_dict(feature) for feature in self.features]
        self.encodes_raw = hasattr(self.model, "forward_raw")
        self.threshold = float(self.schema.get("decision_threshold", 0.5))
        self.version = os.environ.get("MODEL_VERSION", "").strip() or file_version(
            self.model_pt_path
        )
        for name, unit in ((PROBABILITY_METRIC, "Probability"), (DURATION_METRIC, "Seconds")):
            context.metrics.add_metric_to_cache(name, unit, ["ModelName"], MetricTypes.HISTOGRAM)
        logger.info(
            "model %s version %s ready on %s: %d features, batches of at most %d",
            context.model_name,
            self.version,
            self.device,
            len(self.features),
            self.max_batch_size,
        )

    def _load_torchscript_model(self, model_pt_path: str) -> torch.jit.ScriptModule:
        extra_files = {SCHEMA_FILE: ""}
        with warnings.catch_warnings():  # TorchServe 0.12 serves TorchScript, deprecated in torch
            warnings.filterwarnings("ignore", message=r".*torch\.jit", category=DeprecationWarning)
            model = torch.jit.load(
                model_pt_path, map_location=self.device, _extra_files=extra_files
            )
        stored = extra_files[SCHEMA_FILE]
        self.schema = json.loads(stored) if stored else {}
        return model

    # -------------------------------------------------------------- serving
    def handle(self, data: list[Any], context: Any) -> list[Any]:
        """Answer every request of one worker call, in order (one model call in all)."""
        started = time.perf_counter()
        answers: list[Any] = [None] * len(data)
        batch: list[Any] = []
        spans: list[tuple[int, int, int]] = []  # (request index, first row, row count)
        parse = valid_rows if self.encodes_raw else parse_rows
        for index, request in enumerate(data):
            body, problems = decode_body(request)
            rows: list[Any] = []
            if not problems:
                rows, problems = parse(body, self.features, self.max_batch_size)
            if problems:
                answers[index] = self._invalid(context, index, problems)
                continue
            spans.append((index, len(batch), len(rows)))
            batch.extend(rows)
        if batch:
            probabilities = self._predict(batch)
            for index, first, count in spans:
                answers[index] = {
                    "predictions": [
                        {"probability": p, "label": int(p >= self.threshold)}
                        for p in probabilities[first : first + count]
                    ],
                    "model_version": self.version,
                }
            observe = context.metrics.get_metric(PROBABILITY_METRIC, MetricTypes.HISTOGRAM)
            for probability in sampled(probabilities, OBSERVED_PER_CALL):
                observe.add_or_update(probability, [context.model_name])
        duration = context.metrics.get_metric(DURATION_METRIC, MetricTypes.HISTOGRAM)
        duration.add_or_update(time.perf_counter() - started, [context.model_name])
        return answers

    def _predict(self, rows: list[Any]) -> list[float]:
        """Probabilities of checked raw rows (dicts) or encoded rows, one model call."""
        with torch.inference_mode():
            if self.encodes_raw:
                probabilities = self.model.forward_raw(*raw_columns(rows, self.columns))
            else:
                features = torch.tensor(rows, dtype=torch.float32, device=self.device)
                probabilities = self.model(features)
        return [float(p) for p in probabilities.reshape(-1).cpu().tolist()]

    @staticmethod
    def _invalid(context: Any, index: int, problems: list[Problem]) -> dict[str, Any]:
        context.set_response_status(BAD_REQUEST, "Bad Request", index)
        return invalid_answer(problems)
