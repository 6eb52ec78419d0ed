"""MLflow tracking and model registry: log a training run, register it, pick the champion.

Needs the ``registry`` extra (MLflow). Versions are labelled with aliases, not the
deprecated stages: a new version becomes ``champion`` only when it beats the current
champion on the repository's primary metric, otherwise it is the ``challenger``; the
champion it replaced keeps ``previous-champion`` for a one-step rollback.

The registered model is the exported artifact itself, wrapped by a "models from code"
pyfunc (:mod:`mlgen_runtime._registry_model`) that loads it with the repository's own
loader, so ``models:/<name>@champion`` predicts exactly what ships. :func:`main` is a
repository's ``python -m <package>.registry fetch-latest`` command.
"""

from __future__ import annotations

import argparse
import operator
import os
import tempfile
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgen_runtime import profile

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"
TRAINING_CUTOFF_TAG = "mlgen.training_cutoff"
"""Run tag: the newest ingestion time of the rows a version was trained on (ISO 8601)."""
_MODEL_FILE = Path(__file__).with_name("_registry_model.py")


@dataclass(frozen=True)
class Registration:
    """What happened to a newly registered model version."""

    model_name: str
    version: str
    alias: str
    run_id: str
    metric: float
    previous_champion: str | None
    previous_metric: float | None

    @property
    def promoted(self) -> bool:
        """True when the new version became the champion."""
        return self.alias == CHAMPION


def default_tracking_uri(base_dir: Path) -> str:
    """``$MLFLOW_TRACKING_URI``, else a SQLite store ``mlflow.db`` in ``base_dir``.

    In the production profile (:mod:`mlgen_runtime.profile`) the variable is required and
    must name PostgreSQL or a tracking server (:class:`~mlgen_runtime.profile.ProfileError`).
    """
    if profile.name() == profile.PRODUCTION:
        return profile.settings().tracking_uri
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(base_dir) / 'mlflow.db'}"


def client(tracking_uri: str | None = None) -> Any:
    """An ``mlflow.MlflowClient`` on ``tracking_uri`` (also made MLflow's current store).

    Telemetry is off unless ``MLFLOW_DISABLE_TELEMETRY`` says otherwise.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    return mlflow.MlflowClient()


def artifact_location(tracking_uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: ``$MLGEN_ARTIFACT_LOCATION`` when set
    (the production profile's artifact store), ``mlartifacts/`` beside a SQLite store,
    else ``None`` (the tracking server's default)."""
    configured = os.environ.get(profile.ARTIFACTS_ENV, "").strip()
    if configured:
        return configured
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    if not database.is_absolute():
        database = Path("/") / database  # sqlite:////abs/path keeps one slash after ///
    return (database.parent / "mlartifacts").as_uri()


def project_requirements(pyproject: Path) -> list[str] | None:
    """The ``[project] dependencies`` of a ``pyproject.toml`` (``None`` if it is absent):
    what a registered model needs to be loaded elsewhere."""
    if not pyproject.is_file():
        return None
    project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    return list(project.get("dependencies", []))


def current_champion(
    model_name: str, metric: str, mlflow_client: Any | None = None, higher_is_better: bool = True
) -> tuple[str, float] | None:
    """The champion's version and its ``metric``, or ``None`` when there is no champion.

    A champion whose run lacks the metric counts as the worst possible value.
    """
    from mlflow.exceptions import MlflowException

    mlflow_client = mlflow_client or client()
    try:
        version = mlflow_client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None
    worst = float("-inf") if higher_is_better else float("inf")
    metrics = mlflow_client.get_run(version.run_id).data.metrics
    return str(version.version), float(metrics.get(metric, worst))


def champion_tag(model_name: str, tag: str, mlflow_client: Any | None = None) -> str | None:
    """The value of ``tag`` on the champion's training run; ``None`` when there is no
    champion or its run lacks the tag."""
    from mlflow.exceptions import MlflowException

    mlflow_client = mlflow_client or client()
    try:
        version = mlflow_client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None
    value = mlflow_client.get_run(version.run_id).data.tags.get(tag)
    return None if value is None else str(value)


def assign_alias(
    model_name: str,
    version: str,
    value: float,
    champion: tuple[str, float] | None,
    mlflow_client: Any,
    higher_is_better: bool = True,
) -> str:
    """Make ``version`` the champion when ``value`` strictly beats ``champion``'s (or there
    is none), moving the old champion to ``previous-champion``; else the challenger.
    Returns the alias given."""
    better = operator.gt if higher_is_better else operator.lt
    if champion is not None and not better(value, champion[1]):
        mlflow_client.set_registered_model_alias(model_name, CHALLENGER, version)
        return CHALLENGER
    if champion is not None:
        mlflow_client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, champion[0])
    mlflow_client.set_registered_model_alias(model_name, CHAMPION, version)
    return CHAMPION


def log_and_register(
    model_name: str,
    artifact: Path,
    metrics: Mapping[str, Any],
    params: Mapping[str, Any],
    *,
    metric: str,
    loader: str,
    features: Sequence[str],
    higher_is_better: bool = True,
    code_paths: Sequence[Path] = (),
    pip_requirements: Sequence[str] | None = None,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    tags: Mapping[str, str] | None = None,
    files: Sequence[Path] = (),
) -> Registration:
    """Log a run (params, numeric metrics, ``metrics.json``, the model), register a new
    version of ``model_name`` and give it the ``champion`` or ``challenger`` alias.

    Args:
        artifact: the exported model (a file or a folder), stored as-is.
        metrics: the training record; its numbers are logged, all of it as ``metrics.json``.
        metric: the key of ``metrics`` that picks the champion.
        loader: ``"package.module:function"``; ``function(artifact_path)`` returns a
            callable from a float32 matrix to predictions (the repository's own loader).
        features: the model's input columns, in matrix order.
        code_paths: folders MLflow stores with the model so ``loader`` imports on load.
        pip_requirements: what loading the model needs (default: MLflow's inference).
        tracking_uri: the store (default: MLflow's current one).
        experiment: the experiment's name (default: ``model_name``).
        tags: run tags, e.g. :data:`TRAINING_CUTOFF_TAG` (what the new-data trigger reads).
        files: more files stored at the run's root (the drift reference profile), which
            :func:`fetch_latest` downloads with the model.
    """
    mlflow_client = client(tracking_uri)
    import mlflow

    name = experiment or model_name
    found = mlflow_client.get_experiment_by_name(name)
    experiment_id = (
        str(found.experiment_id)
        if found is not None
        else str(
            mlflow_client.create_experiment(
                name, artifact_location=artifact_location(mlflow.get_tracking_uri())
            )
        )
    )
    value = float(metrics[metric])
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params(dict(params))
        if tags:
            mlflow.set_tags(dict(tags))
        mlflow.log_metrics(
            {
                key: float(number)
                for key, number in metrics.items()
                if isinstance(number, int | float) and not isinstance(number, bool)
            }
        )
        mlflow.log_dict(dict(metrics), "metrics.json")
        for path in files:
            mlflow.log_artifact(str(path))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(_MODEL_FILE),
            artifacts={"exported": str(artifact)},
            model_config={"loader": loader, "features": list(features)},
            code_paths=[str(path) for path in code_paths] or None,
            pip_requirements=list(pip_requirements) if pip_requirements is not None else None,
            registered_model_name=model_name,
        )
    version = str(info.registered_model_version)
    champion = current_champion(model_name, metric, mlflow_client, higher_is_better)
    alias = assign_alias(model_name, version, value, champion, mlflow_client, higher_is_better)
    return Registration(
        model_name=model_name,
        version=version,
        alias=alias,
        run_id=run.info.run_id,
        metric=value,
        previous_champion=champion[0] if champion else None,
        previous_metric=champion[1] if champion else None,
    )


def fetch_latest(
    model_name: str, out_dir: Path, mlflow_client: Any | None = None
) -> dict[str, Any]:
    """Download the newest registered version of ``model_name`` into ``out_dir``: its
    exported artifact and training record (``metrics.json``, with ``registry``: version,
    alias, run id, as training writes it). What a workflow builds the image from when the
    training ran elsewhere (the in-cluster Job). Returns the record."""
    import json

    import mlflow

    mlflow_client = mlflow_client or client()
    versions = mlflow_client.search_model_versions(f"name='{model_name}'")
    if not versions:
        raise LookupError(f"no version of {model_name!r} is registered")
    newest = max(versions, key=lambda version: int(version.version))
    latest = mlflow_client.get_model_version(model_name, newest.version)  # with its aliases
    aliases = list(getattr(latest, "aliases", []) or [])
    alias = CHAMPION if CHAMPION in aliases else (aliases[0] if aliases else "")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = latest.run_id
    with tempfile.TemporaryDirectory(dir=out_dir) as staging:
        exported = mlflow.artifacts.download_artifacts(
            f"runs:/{run}/model/artifacts", dst_path=staging
        )
        for item in Path(exported).iterdir():  # the exported model, beside the record
            item.replace(out_dir / item.name)
    for stored in mlflow_client.list_artifacts(run):
        if not stored.is_dir:  # metrics.json and the files logged with it
            mlflow.artifacts.download_artifacts(f"runs:/{run}/{stored.path}", dst_path=str(out_dir))
    record: dict[str, Any] = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    record["registry"] = {"version": str(latest.version), "alias": alias, "run_id": run}
    (out_dir / "metrics.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def load_champion(model_name: str, tracking_uri: str | None = None) -> Any:
    """The champion as an MLflow pyfunc model (``models:/<model_name>@champion``)."""
    client(tracking_uri)
    import mlflow

    return mlflow.pyfunc.load_model(f"models:/{model_name}@{CHAMPION}")


def main(
    argv: Sequence[str] | None = None,
    *,
    model_name: str,
    tracking_uri: str | Callable[[], str] | None = None,
    prog: str | None = None,
) -> int:
    """The registry command: ``fetch-latest --out DIR`` (default ``artifacts``) downloads the
    newest registered version of ``model_name`` (:func:`fetch_latest`) and prints
    ``fetched v<version> (<alias>) to DIR``. ``tracking_uri`` is the store, or a function
    returning it (called after the options are parsed). Returns the exit status.
    """
    parser = argparse.ArgumentParser(prog=prog)
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch-latest", help="download the newest registered version")
    fetch.add_argument("--out", type=Path, default=Path("artifacts"))
    args = parser.parse_args(argv)
    uri = tracking_uri() if callable(tracking_uri) else tracking_uri
    record = fetch_latest(model_name, args.out, client(uri))
    print(f"fetched v{record['registry']['version']} ({record['registry']['alias']}) to {args.out}")
    return 0
