"""The TF Serving backend's checks of a generated repository (``mlgen check``).

* ``tfserving-config``: ``tfserving/models.config`` parsed into TF Serving's own
  ``ModelServerConfig`` (tensorflow-serving-api), ``monitoring.config`` into
  ``MonitoringConfig`` and ``batching.config`` into ``BatchingParameters``, what the
  server needs of their values, and the image's server command against them.
* ``tfserving-savedmodel``: the repository's ``modeling.fit`` + ``export`` on a small
  data set; the SavedModel read as TF Serving reads it (``serve`` MetaGraph,
  ``serving_default`` SignatureDef over the features), reloaded with
  ``tf.saved_model.load`` and called with the REST body the repository's client builds,
  against the in-process model. ``artifacts/models`` is checked too when it exists.

Both run ``validator.py`` with the repository's own interpreter (TensorFlow and
tensorflow-serving-api are dependencies of every TF Serving repository), found by
``mlgen.environments.repo_environment``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import mlgen
from mlgen.checks import first_lines
from mlgen.environments import repo_environment, run_in_repo

VALIDATOR = Path(__file__).resolve().with_name("validator.py")
CONFIG_DIR = "tfserving"
ARTIFACT_DIR = Path("artifacts") / "models"
TIMEOUT_SECONDS = 600


def run_validator(repo: Path, arguments: list[str]) -> mlgen.CheckResult:
    """Run ``validator.py`` in the repository's environment; its verdict as a result."""
    environment = repo_environment(repo)
    result = run_in_repo(
        repo,
        environment,
        ["python", str(VALIDATOR), *arguments],
        timeout=TIMEOUT_SECONDS,
        extra_env={"TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    verdicts = [line for line in lines if line.startswith(("ok: ", "FAILED: ", "problem: "))]
    if result.returncode == 0 and verdicts and verdicts[-1].startswith("ok: "):
        return mlgen.CheckResult(True, verdicts[-1][len("ok: ") :])
    problems = [line[len("problem: ") :] for line in verdicts if line.startswith("problem: ")]
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        return mlgen.CheckResult(False, " | ".join(problems[:3]) + more)
    if verdicts:
        return mlgen.CheckResult(False, verdicts[-1].removeprefix("FAILED: "))
    tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-3:])
    return mlgen.CheckResult(False, first_lines(tail) or f"exit status {result.returncode}")


def _config_check(backend: mlgen.Backend, model_name: str) -> Callable[[Path], mlgen.CheckResult]:
    container = backend.container

    def run(repo: Path) -> mlgen.CheckResult:
        arguments = [
            "config",
            "--dir", str(repo / CONFIG_DIR),
            "--model-name", model_name,
            "--metrics-path", container.metrics_path,
            "--grpc-port", str(container.port("grpc").container_port),
            "--http-port", str(container.port("http").container_port),
        ]  # fmt: skip
        if (repo / "Dockerfile").is_file():
            arguments += ["--dockerfile", str(repo / "Dockerfile")]
        return run_validator(repo, arguments)

    return run


def _saved_model_check(package: str) -> Callable[[Path], mlgen.CheckResult]:
    def run(repo: Path) -> mlgen.CheckResult:
        checked = ""
        if (repo / ARTIFACT_DIR).is_dir():  # an exported model the image would ship
            existing = run_validator(
                repo, ["savedmodel", str(repo / ARTIFACT_DIR), "--package", package]
            )
            if not existing.ok:
                return mlgen.CheckResult(False, f"{ARTIFACT_DIR} (retrain it): {existing.detail}")
            checked = f"; {ARTIFACT_DIR} valid too"
        trained = run_validator(repo, ["train", "--package", package])
        return mlgen.CheckResult(trained.ok, trained.detail + (checked if trained.ok else ""))

    return run


def tfserving_checks(backend: mlgen.Backend, answers: Mapping[str, Any]) -> list[mlgen.Check]:
    """The checks of a repository generated with ``backend``."""
    return [
        mlgen.Check("tfserving-config", _config_check(backend, str(answers["model_name"]))),
        mlgen.Check("tfserving-savedmodel", _saved_model_check(str(answers["package_name"]))),
    ]
