"""No credentials in the repository: checkov's secrets scanner over every file.

Generated repositories take MLflow, registry and cloud credentials from Kubernetes
Secrets and CI secrets by reference; a literal key anywhere is a failure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlgen import Check, CheckResult
from mlgen.checks import find_tool, first_lines, run_tool


def _secrets(repo: Path) -> CheckResult:
    checkov = find_tool("checkov")
    environment = {**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "1", "LOG_LEVEL": "ERROR"}
    result = run_tool(
        [
            checkov,
            "--directory",
            ".",
            "--framework",
            "secrets",
            "--enable-secret-scan-all-files",
            "--skip-download",
            "--quiet",
            "--compact",
            "--skip-path",
            r"\.git/",
            "--skip-path",
            r"\.venv/",
            "--output",
            "json",
        ],
        cwd=repo,
        env=environment,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        detail = first_lines(result.stderr or result.stdout) or f"exit {result.returncode}"
        return CheckResult(False, f"checkov gave no JSON report: {detail}")
    reports = report if isinstance(report, list) else [report]
    failed = [
        finding
        for entry in reports
        for finding in entry.get("results", {}).get("failed_checks", [])
    ]
    if failed:
        shown = " | ".join(
            f"{finding.get('check_name')} in "
            f"{str(finding.get('file_path', '')).lstrip('/')}:"
            f"{(finding.get('file_line_range') or ['?'])[0]}"
            for finding in failed[:3]
        )
        return CheckResult(False, f"{len(failed)} secret(s) found: {shown}")
    return CheckResult(True, "no credentials found (checkov secrets scan)")


def checks(repo: Path, answers: Mapping[str, Any]) -> list[Check]:
    """The secrets check."""
    return [Check("secrets", _secrets)]
