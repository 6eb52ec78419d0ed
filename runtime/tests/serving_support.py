"""A small real model and schema for the serving tests (no ONNX: the app takes any loader).

The model is a logistic regression whose weights live in a JSON file: the service opens
it with :func:`load_logistic`, exactly as a repository's ``modeling.load_exported`` opens
its ONNX file, and a corrupt or empty file fails to load like a real one.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from mlgen_runtime.process import HOST, free_port, running
from mlgen_runtime.schema import Feature, FeatureSchema
from mlgen_runtime.serving import ModelFile, Predict

SCHEMA = FeatureSchema(
    features=(
        Feature("tenure_months", "numeric", 0, 120, "Months since sign-up."),
        Feature("support_calls", "numeric", 0, 50, "Support calls in 90 days."),
        Feature("contract_type", "categorical", 0, 2, "0 monthly, 1 yearly, 2 two years."),
        Feature("autopay", "categorical", 0, 1, "0 off, 1 on."),
    ),
    example={"tenure_months": 7.0, "support_calls": 3.0, "contract_type": 0.0, "autopay": 0.0},
)
WEIGHTS = [-0.04, 0.3, -0.8, -0.5]


def write_model(path: Path, weights: list[float] = WEIGHTS, bias: float = 0.2) -> Path:
    """Save a logistic model's weights as JSON at ``path``."""
    path.write_text(json.dumps({"weights": weights, "bias": bias}), encoding="utf-8")
    return path


def load_logistic(path: Path) -> Predict:
    """Open a model written by :func:`write_model`: rows in, probabilities out."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    weights = np.asarray(data["weights"], dtype=np.float64)
    if weights.shape != (SCHEMA.width,):
        raise ValueError(f"the model has {weights.size} inputs, the schema {SCHEMA.width}")
    bias = float(data["bias"])
    return lambda X: 1.0 / (1.0 + np.exp(-(np.asarray(X, dtype=np.float64) @ weights + bias)))


def expected(rows: list[dict[str, float]], weights: list[float] = WEIGHTS) -> np.ndarray:
    """What the model predicts for ``rows``, computed here independently of the service."""
    X = SCHEMA.to_matrix(rows).astype(np.float64)
    probabilities: np.ndarray = 1.0 / (1.0 + np.exp(-(X @ np.asarray(weights) + 0.2)))
    return probabilities


def model_file(path: Path, version: str | None = None) -> ModelFile:
    """A :class:`ModelFile` for a logistic model at ``path``."""
    return ModelFile(path, load_logistic, version)


def rows(count: int) -> list[dict[str, float]]:
    """``count`` distinct valid rows."""
    return [
        {**SCHEMA.example_row(), "tenure_months": float(3 * i), "support_calls": float(i % 5)}
        for i in range(count)
    ]


@contextmanager
def uvicorn_app(folder: Path, support: str, model_path: Path, title: str) -> Iterator[str]:
    """The service on ``support``'s ``SCHEMA`` and ``model_file(model_path)`` (a module of
    these tests) in a real uvicorn process on loopback; yields ``host:port``."""
    (folder / "served_app.py").write_text(
        "from pathlib import Path\n"
        f"from {support} import SCHEMA, model_file\n"
        "from mlgen_runtime.serving import create_app\n"
        f"app = create_app(schema=SCHEMA, model=model_file(Path({str(model_path)!r})), "
        f"title={title!r}, max_batch_size=64)\n"
    )
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "served_app:app"]
    command += ["--host", HOST, "--port", str(port)]
    tests = Path(__file__).parent
    path = os.pathsep.join(filter(None, [str(folder), str(tests), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    with running(
        [*command, "--log-level", "warning"], f"http://{HOST}:{port}/v2/health/ready", env=env
    ):
        yield f"{HOST}:{port}"
