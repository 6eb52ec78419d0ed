"""No credentials in the repository: checkov's secrets scanner over every file.

Generated repositories take MLflow, registry and cloud credentials from Kubernetes
Secrets and CI secrets by reference; a literal key anywhere is a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlgen import Check, CheckResult

from . import _checkov


def _secrets(repo: Path) -> CheckResult:
    scan = _checkov.scan(repo)
    if failure := scan.failure():
        return failure
    failed = [
        finding
        for report in scan.reports("secrets", lambda path: not path.startswith(_checkov.BUILT_DIR))
        for finding in report["results"]["failed_checks"]
    ]
    if failed:
        shown = " | ".join(
            f"{finding.get('check_name')} in {_checkov.relative(finding)}:"
            f"{(finding.get('file_line_range') or ['?'])[0]}"
            for finding in failed[:3]
        )
        return CheckResult(False, f"{len(failed)} secret(s) found: {shown}")
    return CheckResult(True, "no credentials found (checkov secrets scan)")


def checks(repo: Path, answers: Mapping[str, Any]) -> list[Check]:
    """The secrets check."""
    return [
        Check(
            "secrets",
            _secrets,
            description="checkov's secrets scan finds no credentials in any file.",
        )
    ]
