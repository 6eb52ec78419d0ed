"""checkov, run once per repository for every framework the checks read.

checkov spends most of a run starting up (5-10 s), so one scan covers the Dockerfile,
the built Kubernetes overlays, the GitHub Actions workflows and the secrets scan of
every file. It scans a mirror of the repository (hard links, outside the repository:
the repository is never written to) with the overlays built by kustomize beside it in
:data:`BUILT_DIR`; each check then keeps the findings on the files it owns (the
Kubernetes check only those of the built overlays, which is what would be applied).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlgen import CheckResult
from mlgen.check_cache import IGNORED_DIRS
from mlgen.checks import find_tool, first_lines, run_tool

from . import _memo

FRAMEWORKS = ("dockerfile", "kubernetes", "github_actions", "secrets")
BUILT_DIR = "mlgen-built-k8s"
"""The mirror's folder of built overlays (one ``<overlay>.yaml`` each)."""
ENVIRONMENT = {"CKV_SKIP_PACKAGE_UPDATE_CHECK": "1", "LOG_LEVEL": "ERROR"}
_OUTCOMES = ("passed_checks", "failed_checks", "skipped_checks")

Report = dict[str, Any]


def relative(finding: Mapping[str, Any]) -> str:
    """A finding's file, relative to the scanned root."""
    return str(finding.get("file_path", "")).lstrip("/")


@dataclass(frozen=True)
class Scan:
    """The reports of one checkov run, or why there are none."""

    documents: tuple[Report, ...] = ()
    error: str | None = None

    @property
    def version(self) -> str:
        """checkov's version, from its report."""
        for report in self.documents:
            version = (report.get("summary") or {}).get("checkov_version")
            if version:
                return str(version)
        return "?"

    def failure(self) -> CheckResult | None:
        """A failed result when checkov produced no report."""
        return CheckResult(False, self.error) if self.error else None

    def reports(
        self, framework: str, keep: Callable[[str], bool] = lambda path: True
    ) -> list[Report]:
        """The ``framework`` reports, with only the findings on files ``keep`` accepts."""
        kept: list[Report] = []
        for report in self.documents:
            if report.get("check_type") != framework:
                continue
            results = report.get("results") or {}
            filtered = {
                outcome: [item for item in results.get(outcome) or [] if keep(relative(item))]
                for outcome in _OUTCOMES
            }
            errors = [
                str(path)
                for path in results.get("parsing_errors") or []
                if keep(str(path).lstrip("/"))
            ]
            kept.append({**report, "results": {**filtered, "parsing_errors": errors}})
        return kept


def summarize(reports: Sequence[Report], framework: str, version: str) -> CheckResult:
    """Passed only with zero failed findings, no parsing error and something scanned.

    Findings a check does not apply to are skipped in the artifact itself, with a reason:
    ``# checkov:skip=CKV_DOCKER_X: reason`` in a Dockerfile, or the annotation
    ``checkov.io/skip1: CKV_K8S_X=reason`` on a Kubernetes object (kustomize drops comments).
    """
    results = [report.get("results") or {} for report in reports]
    found = {outcome: [i for r in results for i in r.get(outcome) or []] for outcome in _OUTCOMES}
    failed = found["failed_checks"]
    if failed:
        ids = ", ".join(sorted({str(finding.get("check_id")) for finding in failed}))
        shown = " | ".join(
            f"{finding.get('check_id')} {finding.get('check_name')} "
            f"({relative(finding)}: {finding.get('resource')})"
            for finding in failed[:2]
        )
        return CheckResult(False, f"{len(failed)} failed ({ids}): {shown}")
    parsing_errors = sum(len(r.get("parsing_errors") or []) for r in results)
    if parsing_errors:
        return CheckResult(False, f"checkov could not parse {parsing_errors} file(s)")
    files = {relative(item) for items in found.values() for item in items}
    if not files:
        return CheckResult(False, f"checkov found nothing to check ({framework})")
    return CheckResult(
        True,
        f"{len(found['passed_checks'])} passed, 0 failed, {len(found['skipped_checks'])} "
        f"skipped in {len(files)} file{'s' * (len(files) > 1)} (checkov {version})",
    )


def parse_documents(output: str) -> list[Report]:
    """checkov's JSON output: one document, or several written one after another."""
    decoder = json.JSONDecoder()
    documents: list[Report] = []
    position = 0
    while True:
        while position < len(output) and output[position].isspace():
            position += 1
        if position >= len(output):
            return documents
        loaded, position = decoder.raw_decode(output, position)
        for report in loaded if isinstance(loaded, list) else [loaded]:
            if isinstance(report, dict) and report:
                documents.append(report)


def scan(repo: Path) -> Scan:
    """The checkov scan of ``repo``, run once for all checks that ask in this process.

    Raises:
        ToolMissing: checkov (or kubectl, for the overlays) is not installed.
    """
    repo = repo.resolve()
    return _memo.once(("checkov", str(repo), _memo.files_digest(repo)), lambda: _scan(repo))


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, destination)


def _scan(repo: Path) -> Scan:
    from .kubernetes import OverlayError, build_overlays

    checkov = find_tool("checkov")
    with tempfile.TemporaryDirectory(prefix="mlgen-checkov-") as scratch:
        mirror = Path(scratch) / "repo"
        shutil.copytree(
            repo,
            mirror,
            symlinks=True,
            ignore=shutil.ignore_patterns(*IGNORED_DIRS, "*.pyc"),
            copy_function=_link_or_copy,
        )
        try:
            built = build_overlays(repo)
        except OverlayError:  # the Kubernetes checks report it; the other frameworks go on
            built = {}
        (mirror / BUILT_DIR).mkdir(exist_ok=True)
        for overlay, objects in built.items():
            (mirror / BUILT_DIR / f"{overlay}.yaml").write_text(
                yaml.safe_dump_all(objects, sort_keys=False), encoding="utf-8"
            )
        command = [checkov, "--directory", ".", "--framework", *FRAMEWORKS]
        command += ["--enable-secret-scan-all-files", "--skip-download", "--compact"]
        result = run_tool(
            [*command, "--output", "json"], cwd=mirror, env={**os.environ, **ENVIRONMENT}
        )
    try:
        documents = parse_documents(result.stdout)
    except json.JSONDecodeError:
        output = first_lines(result.stderr or result.stdout) or f"exit status {result.returncode}"
        return Scan(error=f"checkov gave no JSON report: {output}")
    return Scan(tuple(documents))
