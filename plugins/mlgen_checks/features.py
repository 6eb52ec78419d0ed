"""The feature schema and the Feast feature repository, checked with the repository's own
loader and with Feast itself.

``feature-schema``: ``src/<package>/features.yaml`` loads with the repository's own
``python -m <package>.features``; a file that does not validate fails with its one line,
``src/<package>/features.yaml:LINE: KEY: problem``.

``feast-apply``: the source data is written, then ``feast apply`` and
``materialize-incremental`` run. Both run in the repository's own environment (see
``mlgen.environments.repo_environment``); the Feast steps on a temporary copy of
``feature_repo/``, so the repository is never written to, in one process
(:mod:`mlgen_checks._feast_driver`). The source is the repository's own table
(``dataset.source`` of ``features.yaml``, whatever its size: ``write-source`` ignores
``--rows`` for it) or, for the demo, :data:`SAMPLE_ROWS` synthetic rows.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlgen import Check, CheckResult
from mlgen.checks import first_lines
from mlgen.environments import repo_environment, run_in_repo

SAMPLE_ROWS = "500"
"""Rows of the demo's synthetic source (a repository with its own table uses all of it)."""
DRIVER = Path(__file__).resolve().with_name("_feast_driver.py")
INPUTS = ("feature_repo/", "src/", "pyproject.toml")
"""The Feast repository, the code that writes its source data, and the environment's
declared dependencies."""


def _feast_check(package: str) -> Any:
    def run(repo: Path) -> CheckResult:
        source = repo / "feature_repo"
        if not (source / "feature_store.yaml").is_file():
            return CheckResult(False, "feature_repo/feature_store.yaml is missing")
        environment = repo_environment(repo)
        with tempfile.TemporaryDirectory(prefix="mlgen-feast-") as scratch:
            copy = Path(scratch) / "feature_repo"
            shutil.copytree(source, copy, ignore=shutil.ignore_patterns("data", "__pycache__"))
            end = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
            result = run_in_repo(
                repo,
                environment,
                ["python", str(DRIVER), package, str(copy), end, SAMPLE_ROWS],
                timeout=600,
                extra_env={"FEATURE_REPO_DIR": str(copy)},
            )
        if result.returncode != 0:
            steps = [line for line in result.stdout.splitlines() if line.startswith("step: ")]
            step = steps[-1].removeprefix("step: ") if steps else "feast"
            lines = (result.stderr.strip() or result.stdout).splitlines()[-3:]
            return CheckResult(False, f"{step}: {first_lines(chr(10).join(lines))}")
        return CheckResult(True, "feast apply and materialize-incremental succeeded")

    return run


def _schema_check(package: str) -> Any:
    def run(repo: Path) -> CheckResult:
        relative = f"src/{package}/features.yaml"
        result = run_in_repo(
            repo, repo_environment(repo), ["python", "-m", f"{package}.features"], timeout=300
        )
        if result.returncode != 0:
            lines = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()
            line = lines[-1].removeprefix("error: ")
            return CheckResult(False, line.replace(str(repo / relative), relative))
        summary = result.stdout.strip().splitlines()
        return CheckResult(True, summary[0] if summary else f"{relative} loads")

    return run


def checks(repo: Path, answers: Mapping[str, Any]) -> list[Check]:
    """The feature-schema check (repositories with a ``features.yaml``) and the
    feature-store checks."""
    package = str(answers["package_name"])
    schema = []
    if (repo / "src" / package / "features.yaml").is_file():
        schema.append(
            Check(
                "feature-schema",
                _schema_check(package),
                inputs=("src/", "pyproject.toml"),
                description="src/<package>/features.yaml validates with the repository's own "
                "loader (python -m <package>.features).",
            )
        )
    return [
        *schema,
        Check(
            "feast-apply",
            _feast_check(str(answers["package_name"])),
            inputs=INPUTS,
            description="feast apply and materialize-incremental succeed on the repository's "
            "own source data (its table, or a sample of the demo's).",
        ),
    ]
