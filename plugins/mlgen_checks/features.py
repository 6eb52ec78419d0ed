"""The Feast feature repository, checked with Feast itself: apply and materialize.

Runs in the repository's own environment (see ``mlgen.environments.repo_environment``)
on a temporary copy of ``feature_repo/``, so the repository is never written to; the
three steps run in one process (:mod:`mlgen_checks._feast_driver`).
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


def checks(repo: Path, answers: Mapping[str, Any]) -> list[Check]:
    """The feature-store checks."""
    return [
        Check(
            "feast-apply",
            _feast_check(str(answers["package_name"])),
            inputs=INPUTS,
            description="feast apply and materialize-incremental succeed on a sample of the "
            "repository's own source data.",
        )
    ]
