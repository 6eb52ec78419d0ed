"""A schema with string categories and nullable features, a raw training table, and a
small real model on them for the serving tests (no ONNX: the app takes any loader).

The model is a logistic regression on the encoded matrix; its file holds the weights and
the fitted :class:`~mlgen_runtime.export.preprocessing.Preprocessing`, so the loader
takes raw values by feature, as an ONNX graph exported with preprocessing does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mlgen_runtime.export.preprocessing import Preprocessing
from mlgen_runtime.schema import parse_schema
from mlgen_runtime.serving import ModelFile, Predict

SCHEMA = parse_schema(
    """\
features:
  - name: island
    type: category
    levels: [Biscoe, Dream, Torgersen, other]
    unknown: other
    nullable: true
    impute: most_frequent
    description: Island where the penguin was observed.
  - name: sex
    type: category
    levels: [female, male]
    unknown: reject
    nullable: true
    impute: constant
    fill_value: male
  - name: bill_length_mm
    type: number
    minimum: 20
    maximum: 70
    nullable: true
    impute: median
  - name: flipper_length_mm
    type: number
    minimum: 150
    maximum: 250
  - name: tagged
    type: boolean
example:
  island: Torgersen
  sex: null
  bill_length_mm: null
  flipper_length_mm: 190
  tagged: true
""",
    "raw_support.yaml",
)
WEIGHTS = [0.6, -0.4, -0.08, 0.02, 0.3]
ISLANDS = ["Biscoe", "Dream", "Torgersen", "Atlantis", None]


def table(count: int = 400, seed: int = 5) -> dict[str, list[Any]]:
    """A raw training table: strings, an unknown island, nulls in the nullable columns."""
    rng = np.random.default_rng(seed)
    return {
        "island": [ISLANDS[i] for i in rng.choice(5, count, p=[0.4, 0.3, 0.2, 0.05, 0.05])],
        "sex": [["female", "male", None][i] for i in rng.choice(3, count, p=[0.45, 0.45, 0.1])],
        "bill_length_mm": [
            None if rng.random() < 0.1 else float(np.round(rng.uniform(32, 58), 1))
            for _ in range(count)
        ],
        "flipper_length_mm": [float(v) for v in np.round(rng.uniform(172, 231, count), 0)],
        "tagged": [bool(v) for v in rng.random(count) < 0.5],
    }


PREPROCESSING = Preprocessing.fit(SCHEMA.features, table())


def write_model(path: Path, weights: list[float] = WEIGHTS, bias: float = 0.1) -> Path:
    """Save the weights and the fitted preprocessing as JSON at ``path``."""
    data = {"weights": weights, "bias": bias, "preprocessing": PREPROCESSING.to_json()}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def load_raw(path: Path) -> Predict:
    """Open a model written by :func:`write_model`: raw values in, probabilities out."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    preprocessing = Preprocessing.from_json(data["preprocessing"])
    weights, bias = np.asarray(data["weights"], dtype=np.float64), float(data["bias"])

    def predict(X: Any) -> np.ndarray:
        encoded = preprocessing.encode(X).astype(np.float64)
        return np.asarray(1.0 / (1.0 + np.exp(-(encoded @ weights + bias))))

    return predict


def expected(rows: list[dict[str, Any]]) -> np.ndarray:
    """What the model predicts for raw ``rows``: the fitted preprocessing's encoding
    (missing keys are nulls), then the logistic function."""
    columns = {name: [row.get(name) for row in rows] for name in SCHEMA.names}
    encoded = PREPROCESSING.encode(columns).astype(np.float64)
    return np.asarray(1.0 / (1.0 + np.exp(-(encoded @ np.asarray(WEIGHTS) + 0.1))))


def model_file(path: Path) -> ModelFile:
    """A :class:`ModelFile` for a raw model at ``path``."""
    return ModelFile(path, load_raw)


def raw_rows(count: int, seed: int = 8) -> list[dict[str, Any]]:
    """``count`` valid raw rows (strings, nulls, an unknown island)."""
    data = table(count, seed)
    return [{name: data[name][i] for name in SCHEMA.names} for i in range(count)]
