"""The Feast feature repository, checked with Feast itself: apply and materialize.

Runs in the repository's own environment (see ``mlgen.environments.repo_environment``)
on a temporary copy of ``feature_repo/``, so the repository is never written to.
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
            steps = [
                ["python", "-m", f"{package}.feature_store", "write-source", "--rows", SAMPLE_ROWS],
                ["feast", "-c", str(copy), "apply"],
                ["feast", "-c", str(copy), "materialize-incremental", end],
            ]
            for step in steps:
                result = run_in_repo(
                    repo, environment, step, timeout=600, extra_env={"FEATURE_REPO_DIR": str(copy)}
                )
                if result.returncode != 0:
                    output = result.stderr.strip() or result.stdout
                    lines = output.splitlines()[-3:]
                    return CheckResult(
                        False, f"{' '.join(step[:3])}: {first_lines(chr(10).join(lines))}"
                    )
        return CheckResult(True, "feast apply and materialize-incremental succeeded")

    return run


def checks(repo: Path, answers: Mapping[str, Any]) -> list[Check]:
    """The feature-store checks."""
    return [Check("feast-apply", _feast_check(str(answers["package_name"])))]
