"""``POST /predict`` without the HTTP layer: a validated request in, status and JSON out.

The FastAPI route and the fast path in front of it (:mod:`.fast_path`) both answer with
:meth:`Predictor.answer`, so a valid request gets byte-for-byte the same answer either way.
"""

from __future__ import annotations

import json
import logging
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel, TypeAdapter

from mlgen_runtime.export.preprocessing import Column, Preprocessing, needs_preprocessing
from mlgen_runtime.schema import FeatureSchema
from mlgen_runtime.serving.experiment import CONTROL, Experiment
from mlgen_runtime.serving.metrics import ServingMetrics
from mlgen_runtime.serving.model import ServedModel
from mlgen_runtime.serving.online_drift import OnlineDrift

logger = logging.getLogger("uvicorn.error")
Inputs = np.ndarray | Mapping[str, Sequence[Any]]
"""What a model is called with: the float32 matrix, or raw values by feature name."""
INTERNAL_ERROR = b'{"detail":"internal server error"}'


class Prediction(NamedTuple):
    """What :meth:`Predictor.predict` answers.

    Attributes:
        status: 200, 503 (the variant's model is not loaded) or 500 (it failed).
        variant: the variant that answered.
        version: its model's version (``None`` when it is not loaded).
        probabilities: the positive-class probability of each row (status 200).
        error: why not (status 503 or 500).
    """

    status: int
    variant: str
    version: str | None
    probabilities: Sequence[float]
    error: str = ""


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
        self.names = schema.names
        self.raw = needs_preprocessing(schema.features)
        """Whether the model takes raw values by feature (a string category or a nullable
        feature: the artifact encodes and imputes), not the float32 matrix."""
        self.coding = coding(schema)

    def answer(self, payload: Any, user_header: str | None) -> tuple[int, bytes, str]:
        """The status, JSON body and variant (metric label) of the answer to ``payload``
        (a validated request: a batch or a single row) with the ``X-User-Id`` header."""
        user_id = payload.user_id if payload.user_id is not None else user_header
        batch = isinstance(payload, self.batch_model)
        rows = payload.instances if batch else (payload,)
        features: Inputs
        if self.raw:
            values = [self.row_values(row) for row in rows]
            features = {name: [row[i] for row in values] for i, name in enumerate(self.names)}
        else:
            features = np.array([self.row_values(row) for row in rows], dtype=np.float32)
        outcome = self.predict(features, user_id)
        if outcome.status != 200:
            return outcome.status, error_body(outcome.error), outcome.variant
        threshold = self.threshold
        body = self.dump(
            {
                "predictions": [
                    {"probability": p, "label": 1 if p >= threshold else 0}
                    for p in outcome.probabilities
                ],
                "model_version": outcome.version,
                "variant": outcome.variant,
            }
        )
        return 200, body, outcome.variant

    def predict(self, features: Inputs, user_id: str | None) -> Prediction:
        """Route ``features`` (rows already validated: the ``float32`` input matrix, or for
        a model with preprocessing the raw values by feature name) to the user's variant,
        predict in one model call, count: what every prediction route does. A model that
        is not loaded gives 503, one that fails 500 (logged)."""
        variant = CONTROL if self.experiment is None else self.experiment.variant_for(user_id)
        model = self.models[variant]
        if model.predict is None:
            return Prediction(503, variant, None, (), f"model not ready: {model.error}")
        try:
            # One call for the whole batch. A small model answers in microseconds, less
            # than a hop to a worker thread would cost, so it runs on the event loop.
            probabilities = np.asarray(model.predict(features), dtype=np.float64).tolist()
            rows = len(features) if isinstance(features, np.ndarray) else _rows(features)
            if len(probabilities) != rows or not all(
                0.0 <= p <= 1.0
                for p in probabilities  # NaN fails this too
            ):
                raise ValueError(
                    f"the model returned {len(probabilities)} probabilities for "
                    f"{rows} rows, or some outside [0, 1]: {probabilities[:5]}"
                )
            if self.drift is not None:
                self.drift.update(
                    features
                    if isinstance(features, np.ndarray)
                    else self.coding.codes(features).astype(np.float32)
                )
            self.metrics.observe_probabilities(variant, probabilities)
        except Exception:
            logger.exception("%s %s model failed to predict", self.name, variant)
            return Prediction(500, variant, model.version, (), "internal server error")
        return Prediction(200, variant, model.version, probabilities)


def _rows(columns: Mapping[str, Sequence[Any]]) -> int:
    return len(next(iter(columns.values()))) if columns else 0


def coding(schema: FeatureSchema) -> Preprocessing:
    """The schema's codes without imputation (:meth:`Preprocessing.codes`: a string
    category's level index, an unknown one the ``"other"`` level's, NaN for a null):
    what online drift counts."""
    columns = []
    for feature in schema.features:
        levels = tuple(feature.levels) if getattr(feature, "string_levels", False) else None
        other = None
        if levels is not None and feature.unknown == "other":
            other = levels.index("other")
        columns.append(Column(feature.name, levels, other))
    return Preprocessing(tuple(columns))
