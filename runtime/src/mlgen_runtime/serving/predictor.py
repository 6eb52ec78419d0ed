"""``POST /predict`` without the HTTP layer: a validated request in, status and JSON out.

The FastAPI route and the fast path in front of it (:mod:`.fast_path`) both answer with
:meth:`Predictor.answer`, so a valid request gets byte-for-byte the same answer either way.
"""

from __future__ import annotations

import json
import logging
import operator
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, TypeAdapter

from mlgen_runtime.schema import FeatureSchema
from mlgen_runtime.serving.experiment import CONTROL, Experiment
from mlgen_runtime.serving.metrics import ServingMetrics
from mlgen_runtime.serving.model import ServedModel
from mlgen_runtime.serving.online_drift import OnlineDrift

logger = logging.getLogger("uvicorn.error")
INTERNAL_ERROR = b'{"detail":"internal server error"}'


def error_body(detail: str) -> bytes:
    """The JSON body of a refused request: ``{"detail": "..."}``."""
    return json.dumps({"detail": detail}, separators=(",", ":")).encode()


class Predictor:
    """Routes a request to its variant's model, predicts, counts, and writes the answer.

    Args:
        schema: the features; rows become the input matrix in its column order.
        models: the served models by variant.
        experiment: the A/B experiment, or ``None`` (everything goes to the control).
        batch_model: the batch request model (any other request is one row).
        response: serialises the answer (``PredictResponse``).
        metrics: where probabilities are counted.
        decision_threshold: a probability at or above it is label 1.
        name: the model's name, for log lines.
    """

    def __init__(
        self,
        schema: FeatureSchema,
        models: Mapping[str, ServedModel],
        experiment: Experiment | None,
        batch_model: type[BaseModel],
        response: TypeAdapter[Any],
        metrics: ServingMetrics,
        decision_threshold: float,
        name: str,
    ) -> None:
        self.models = models
        self.experiment = experiment
        self.batch_model = batch_model
        self.dump = response.dump_json
        self.metrics = metrics
        self.threshold = decision_threshold
        self.name = name
        self.drift: OnlineDrift | None = None  # set when the app starts
        getter = operator.attrgetter(*schema.names)
        self.row_values: Callable[[Any], Any] = (
            (lambda row: (getter(row),)) if schema.width == 1 else getter
        )

    def answer(self, payload: Any, user_header: str | None) -> tuple[int, bytes, str]:
        """The status, JSON body and variant (metric label) of the answer to ``payload``
        (a validated request: a batch or a single row) with the ``X-User-Id`` header."""
        user_id = payload.user_id if payload.user_id is not None else user_header
        variant = CONTROL if self.experiment is None else self.experiment.variant_for(user_id)
        model = self.models[variant]
        if model.predict is None:
            return 503, error_body(f"model not ready: {model.error}"), variant
        batch = isinstance(payload, self.batch_model)
        rows = payload.instances if batch else (payload,)
        try:
            features = np.array([self.row_values(row) for row in rows], dtype=np.float32)
            # One call for the whole batch. A small model answers in microseconds, less
            # than a hop to a worker thread would cost, so it runs on the event loop.
            probabilities = np.asarray(model.predict(features), dtype=np.float64).tolist()
            if len(probabilities) != len(rows) or not all(
                0.0 <= p <= 1.0
                for p in probabilities  # NaN fails this too
            ):
                raise ValueError(
                    f"the model returned {len(probabilities)} probabilities for {len(rows)} "
                    f"rows, or some outside [0, 1]: {probabilities[:5]}"
                )
            if self.drift is not None:
                self.drift.update(features)
            self.metrics.observe_probabilities(variant, probabilities)
        except Exception:
            logger.exception("%s %s model failed to predict", self.name, variant)
            return 500, INTERNAL_ERROR, variant
        threshold = self.threshold
        body = self.dump(
            {
                "predictions": [
                    {"probability": p, "label": 1 if p >= threshold else 0} for p in probabilities
                ],
                "model_version": model.version,
                "variant": variant,
            }
        )
        return 200, body, variant
