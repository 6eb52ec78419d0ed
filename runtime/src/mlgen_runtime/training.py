"""The steps every repository's training shares: checks, record, registration, command line.

A repository's ``train.py`` keeps what is its own (data, the model's metrics, the gate's
value, the record it writes); these are the shared steps around it:

* :func:`check_gate`: refuse a model whose held-out metric is below the gate;
* :func:`check_export`: refuse an export that does not predict what the in-process
  model does;
* :func:`summary`: the one-line report printed after training (and by smoke tests);
* :func:`write_record`: ``metrics.json`` beside the exported model, with its digest;
* :func:`register`: the registration step (MLflow, through the repository's own
  ``log_and_register``), recorded in ``metrics.json``;
* :func:`main`: the training command line (``--out``, ``--rows``, ``--seed``,
  ``--source``, ``--no-register``), checking the profile's stores first.

Both checks raise :class:`TrainingError`, which a command turns into exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from mlgen_runtime import profile
from mlgen_runtime.artifacts import sha256_of, write_json
from mlgen_runtime.registry import TRAINING_CUTOFF_TAG

__all__ = [
    "METRICS_FILENAME",
    "SOURCES",
    "TrainingError",
    "check_export",
    "check_gate",
    "display_path",
    "load_dataset",
    "main",
    "register",
    "summary",
    "training_cutoff",
    "write_record",
]

METRICS_FILENAME = "metrics.json"
"""The training record, beside the exported model."""
SOURCES = ("feast", "synthetic")
"""Where training data comes from: the feature store (point-in-time join) or the generator."""


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


def load_dataset(
    source: str,
    rows: int,
    seed: int,
    synthetic: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    feature_store: str,
) -> tuple[np.ndarray, np.ndarray]:
    """The labelled training set ``(X, y)`` from ``source`` (one of :data:`SOURCES`).

    ``"synthetic"``: ``synthetic(rows, seed)`` (the repository's generator). ``"feast"``:
    the point-in-time join of the repository's feature-store module (named by
    ``feature_store``, imported only here, as Feast is slow to import): in the local
    profile it first writes ``rows`` synthetic source rows (``write_source_data``); the
    production profile never rewrites the offline source. Then ``apply_definitions`` and
    ``training_data``. Raises ``ValueError`` for another source.
    """
    if source == "synthetic":
        return synthetic(rows, seed)
    if source != "feast":
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    store = importlib.import_module(feature_store)
    if profile.name() == profile.LOCAL:
        store.write_source_data(rows, seed)
    X, y = store.training_data(store.apply_definitions())
    return X, y


def training_cutoff(source: str, feature_store: str) -> str | None:
    """The newest ingestion time of the source rows trained on (the feature-store module's
    ``training_cutoff()``), for the new-data trigger; ``None`` unless ``source`` is
    ``"feast"``."""
    if source != "feast":
        return None
    cutoff = importlib.import_module(feature_store).training_cutoff()
    return None if cutoff is None else str(cutoff)


def write_record(artifact: Path, record: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``metrics.json`` beside the exported ``artifact``; return what was written.

    ``record`` is the repository's own part (``model_name``, its metrics, the gate, the
    data it trained on); this adds ``artifact`` (the file name), ``artifact_sha256``
    (:func:`~mlgen_runtime.artifacts.sha256_of`) and ``trained_at`` (UTC, ISO 8601).
    """
    artifact = Path(artifact)
    written = {
        **record,
        "artifact": artifact.name,
        "artifact_sha256": sha256_of(artifact),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json(artifact.parent / METRICS_FILENAME, written)
    return written


def register(
    record: dict[str, Any],
    out_dir: Path,
    log_and_register: Callable[..., Any],
    **params: Any,
) -> dict[str, Any]:
    """Register the model of a training ``record`` and note it in ``metrics.json``.

    Calls ``log_and_register(artifact, record, params, tags)`` (the repository's
    ``registry.log_and_register``) with ``params`` plus ``export_format``, and the
    ``mlgen.training_cutoff`` tag when the record has a ``training_cutoff`` (what the
    new-data trigger reads). ``record`` gains ``registry`` (version, alias, run id) and
    is written again; it is returned.
    """
    artifact = Path(out_dir) / record["artifact"]
    cutoff = record.get("training_cutoff")
    tags = {TRAINING_CUTOFF_TAG: cutoff} if cutoff else None
    params = {**params, "export_format": record["export_format"]}
    registration = log_and_register(artifact, record, params, tags)
    record["registry"] = {key: getattr(registration, key) for key in ("version", "alias", "run_id")}
    write_json(artifact.parent / METRICS_FILENAME, record)
    return record


def main(
    train: Callable[[Path, int, int, str, bool], Mapping[str, Any]],
    argv: Sequence[str] | None = None,
    *,
    prog: str,
    out: Path,
    rows: int,
    seed: int,
    min_rows: int,
    description: str | None = "Train, evaluate, gate and export the model.",
    sources: Sequence[str] = SOURCES,
) -> int:
    """The training command: parse the options, check the profile's stores, ``train``.

    ``train(out_dir, rows, seed, source, register)`` returns the record it wrote; ``out``,
    ``rows`` and ``seed`` are the defaults, ``sources[0]`` the default source. Fewer than
    ``min_rows`` rows is a usage error (exit 2). The stores of the profile
    (:func:`mlgen_runtime.profile.check`; Feast only for the ``feast`` source) are checked
    before anything is written. Returns 0 after printing :func:`summary`, or 1 after
    printing ``error: <reason>`` on a :class:`TrainingError` or
    :class:`~mlgen_runtime.profile.ProfileError`.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add = parser.add_argument
    add("--out", type=Path, default=out, help="output folder (default: %(default)s)")
    add("--rows", type=int, default=rows, help="rows of data (default: %(default)s)")
    add("--seed", type=int, default=seed, help="random seed (default: %(default)s)")
    add(
        "--source", choices=sources, default=sources[0], help="training data (default: %(default)s)"
    )
    add("--no-register", dest="register", action="store_false", help="do not register in MLflow")
    args = parser.parse_args(argv)
    if args.rows < min_rows:
        parser.error(f"--rows must be at least {min_rows}")
    try:
        profile.check(feast=args.source == "feast")
        record = train(args.out, args.rows, args.seed, args.source, args.register)
    except (TrainingError, profile.ProfileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(summary(record, args.out))
    return 0
