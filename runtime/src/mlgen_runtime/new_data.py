"""The new-data retraining trigger: retrain once the offline source has gained enough rows.

The fourth retraining trigger beside the schedule, a performance drop and drift. A
repository's training records, with the MLflow run of every version, the newest
ingestion time of the rows it trained on (the run tag
:data:`mlgen_runtime.registry.TRAINING_CUTOFF_TAG`). This check counts the rows of the
feature view's offline source that arrived after the *champion's* cutoff
(:func:`mlgen_runtime.feature_store.rows_since`) and decides to retrain when they reach
the repository's ``retrain_min_new_rows``. With no champion yet, every row is new.

``python -m <package>.new_data [--min-rows N] [--retrain]`` (:func:`main`) prints the
decision as JSON; its exit status is 0 below the threshold, 1 past it (like the drift
check, so a workflow dispatches retraining on 1), 2 on an error. With ``--retrain``
(the in-cluster CronJob) it runs the repository's training itself past the threshold and
exits with training's status.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from mlgen_runtime import feature_store as feast_helpers
from mlgen_runtime import profile, registry

__all__ = ["Decision", "decide", "main"]

RETRAIN_STATUS = 1
ERROR_STATUS = 2


@dataclass(frozen=True)
class Decision:
    """What the check found: new rows since the champion's cutoff against the threshold."""

    new_rows: int
    min_new_rows: int
    champion_cutoff: str | None
    retrain: bool


def decide(
    feature_store: Any,
    view: str,
    model_name: str,
    min_new_rows: int,
    mlflow_client: Any | None = None,
) -> Decision:
    """Count ``view``'s source rows newer than the champion's training cutoff; retrain
    when there are at least ``min_new_rows`` (``min_new_rows`` must be positive)."""
    if min_new_rows < 1:
        raise ValueError(f"min_new_rows must be positive, got {min_new_rows}")
    recorded = registry.champion_tag(model_name, registry.TRAINING_CUTOFF_TAG, mlflow_client)
    cutoff = datetime.fromisoformat(recorded) if recorded else None
    count = feast_helpers.rows_since(feature_store, view, cutoff)
    return Decision(count, min_new_rows, recorded, count >= min_new_rows)


def main(
    argv: Sequence[str] | None,
    *,
    prog: str,
    feature_store: Callable[[], Any],
    view: str,
    model_name: str,
    tracking_uri: Callable[[], str],
    min_new_rows: int,
    retrain: Callable[[], int],
) -> int:
    """A repository's new-data check; returns the exit status (see the module docstring).

    ``feature_store`` and ``tracking_uri`` are called only after the profile's stores
    answered (:func:`mlgen_runtime.profile.check`); ``retrain`` runs the repository's
    training and returns its exit status.
    """
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--min-rows",
        type=int,
        default=min_new_rows,
        help="new rows that start retraining (default: %(default)s, retrain_min_new_rows)",
    )
    parser.add_argument(
        "--retrain", action="store_true", help="run training here past the threshold"
    )
    args = parser.parse_args(argv)
    if args.min_rows < 1:
        parser.error("--min-rows must be positive")
    try:
        profile.check()
        decision = decide(
            feature_store(), view, model_name, args.min_rows, registry.client(tracking_uri())
        )
    except (profile.ProfileError, NotImplementedError) as error:
        print(f"error: {error}", file=sys.stderr)
        return ERROR_STATUS
    print(json.dumps(asdict(decision)))
    if not decision.retrain:
        return 0
    return retrain() if args.retrain else RETRAIN_STATUS
