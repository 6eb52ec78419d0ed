"""The checks every repository's training runs before it ships a model (numpy only).

A repository's ``train.py`` keeps what is its own (data, the model's metrics, the gate's
value, the record it writes); these are the shared steps around it:

* :func:`check_gate`: refuse a model whose held-out metric is below the gate;
* :func:`check_export`: refuse an export that does not predict what the in-process
  model does;
* :func:`summary`: the one-line report printed after training (and by smoke tests).

Both checks raise :class:`TrainingError`, which a command turns into exit status 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TrainingError", "check_export", "check_gate", "display_path", "summary"]


class TrainingError(RuntimeError):
    """Training produced a model that must not be shipped."""


def check_gate(metrics: Mapping[str, float], gate: float, metric: str = "roc_auc") -> None:
    """Raise :class:`TrainingError` unless ``metrics[metric]`` is at least ``gate``.

    A NaN metric fails the gate too.
    """
    value = metrics[metric]
    if not value >= gate:
        label = "ROC AUC" if metric == "roc_auc" else metric
        raise TrainingError(
            f"quality gate failed: {label} {value:.4f} is below {gate}; the model was not exported"
        )


def check_export(expected: np.ndarray, exported: np.ndarray, tolerance: float) -> float:
    """The largest |difference| between two probability vectors.

    Raises:
        TrainingError: the shapes differ, or a difference is above ``tolerance`` (or NaN).
    """
    expected, exported = np.asarray(expected), np.asarray(exported)
    if exported.shape != expected.shape:
        raise TrainingError(
            f"export check failed: exported model returned shape {exported.shape}, "
            f"expected {expected.shape}"
        )
    difference = float(np.max(np.abs(exported.astype(np.float64) - expected), initial=0.0))
    if not difference <= tolerance:
        raise TrainingError(
            f"export check failed: exported probabilities differ from the in-process "
            f"model's by up to {difference:.2e} (tolerance {tolerance:.0e})"
        )
    return difference


def summary(
    record: Mapping[str, Any],
    out_dir: Path,
    metrics: tuple[str, ...] = ("roc_auc", "accuracy", "log_loss"),
    gate_key: str = "auc_gate",
) -> str:
    """The one-line report of a training ``record`` (what ``metrics.json`` holds).

    ``model: roc_auc=0.912 accuracy=0.861 log_loss=0.321 (gate 0.75) -> artifacts/model.onnx
    [onnx] registered v3 as champion``: the ``metrics`` present in the record, its gate,
    where the artifact is and, when the record has ``registry``, its version and alias.
    """
    registered = record.get("registry")
    where = f" registered v{registered['version']} as {registered['alias']}" if registered else ""
    values = " ".join(f"{name}={record[name]:.3f}" for name in metrics if name in record)
    gate = f" (gate {record[gate_key]})" if gate_key in record else ""
    artifact = display_path(Path(out_dir) / record["artifact"])
    return (
        f"{record['model_name']}: {values}{gate} -> {artifact} [{record['export_format']}]{where}"
    )


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
