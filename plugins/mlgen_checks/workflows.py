"""Checks of the repository's GitHub Actions workflows.

* ``actionlint``: actionlint, with shellcheck linting every ``run:`` script (shellcheck
  is passed explicitly: without it on PATH actionlint silently skips the scripts).
* ``checkov-github-actions``: checkov's GitHub Actions policies (shell injection, curl
  with secrets, write-all permissions, unsigned images, ...) with zero failures. checkov
  silently ignores a workflow that does not match its schema (a job with
  ``permissions: write-all`` is enough), so every workflow must also have been scanned.
* ``actions-pinned``: every remote action and reusable workflow is pinned to a full
  40-hex commit SHA with a ``# vX.Y.Z`` comment naming the release; local ``./`` actions
  and ``docker://`` images pinned by ``@sha256:`` digest are allowed.
* ``workflow-permissions``: least privilege: every workflow sets top-level
  ``permissions`` with read (or none) scopes only; write scopes are granted per job, and
  never as ``write-all``/``read-all``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from mlgen import Check, CheckResult
from mlgen.checks import find_tool, first_lines, run_tool

from . import _checkov

WORKFLOWS_DIR = Path(".github") / "workflows"

_SHA = re.compile(r"^[0-9a-f]{40}$")
_DOCKER_DIGEST = re.compile(r"^docker://[^@\s]+@sha256:[0-9a-f]{64}$")
_VERSION_COMMENT = re.compile(r"#\s*v?\d+(\.\d+)*\S*")
_USES_LINE = re.compile(
    r"""^\s*(?:-\s+)?uses:\s*["']?(?P<ref>[^\s"'#]+)["']?\s*(?P<comment>#.*)?$"""
)


def workflow_files(repo: Path) -> list[Path]:
    """The repository's workflow files, sorted."""
    folder = repo / WORKFLOWS_DIR
    if not folder.is_dir():
        return []
    return sorted(
        path for path in folder.iterdir() if path.is_file() and path.suffix in (".yml", ".yaml")
    )


def _no_workflows(repo: Path) -> CheckResult | None:
    if workflow_files(repo):
        return None
    return CheckResult(False, f"no workflow files in {WORKFLOWS_DIR.as_posix()}")


def _relative(repo: Path, path: Path) -> str:
    return path.relative_to(repo).as_posix()


# ------------------------------------------------------------------ actionlint
def _actionlint(repo: Path) -> CheckResult:
    if missing := _no_workflows(repo):
        return missing
    actionlint = find_tool("actionlint")
    shellcheck = find_tool("shellcheck")
    files = [_relative(repo, path) for path in workflow_files(repo)]
    result = run_tool(
        [actionlint, "-no-color", "-oneline", "-shellcheck", shellcheck, "-pyflakes", "", *files],
        cwd=repo,
    )
    if result.returncode == 0:
        return CheckResult(True, f"{len(files)} workflows, run: scripts shellchecked, no problems")
    problems = [line for line in result.stdout.splitlines() if line.strip()]
    detail = first_lines(result.stdout or result.stderr)
    if result.returncode == 1 and problems:
        return CheckResult(False, f"{len(problems)} problems: {detail}")
    return CheckResult(False, f"actionlint failed (exit {result.returncode}): {detail}")


# ------------------------------------------------------------------ checkov
def _checkov_workflows(repo: Path) -> CheckResult:
    if missing := _no_workflows(repo):
        return missing
    scan = _checkov.scan(repo)
    if failure := scan.failure():
        return failure
    outcomes: dict[str, list[dict[str, Any]]] = {"passed": [], "failed": [], "skipped": []}
    for report in scan.reports("github_actions"):
        for outcome, found in outcomes.items():
            found.extend(report["results"].get(f"{outcome}_checks") or [])
    scanned = {_checkov.relative(item) for found in outcomes.values() for item in found}
    unscanned = [
        _relative(repo, path)
        for path in workflow_files(repo)
        if _relative(repo, path) not in scanned
    ]
    failed = outcomes["failed"]
    if failed:
        listed = "; ".join(
            f"{item.get('check_id')} {str(item.get('file_path', '')).lstrip('/')}:"
            f"{item.get('resource')}"
            for item in failed[:3]
        )
        return CheckResult(False, f"{len(failed)} failed checks: {listed}")
    if unscanned:
        return CheckResult(
            False,
            "checkov did not scan (the workflow does not match its GitHub Actions schema): "
            + ", ".join(unscanned),
        )
    skipped = sorted({str(item.get("check_id")) for item in outcomes["skipped"]})
    detail = f"{len(outcomes['passed'])} passed, 0 failed"
    if skipped:
        detail += f", {len(outcomes['skipped'])} skipped in-file ({', '.join(skipped)})"
    return CheckResult(True, f"{len(scanned)} workflows: {detail}")


# ------------------------------------------------------------------ parsing helpers
def _load(path: Path) -> dict[Any, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError("not a YAML mapping")
    return loaded


def _jobs(workflow: Mapping[Any, Any]) -> Iterator[tuple[str, Mapping[Any, Any]]]:
    jobs = workflow.get("jobs")
    if isinstance(jobs, Mapping):
        for name, job in jobs.items():
            if isinstance(job, Mapping):
                yield str(name), job


def _uses(workflow: Mapping[Any, Any]) -> Iterator[str]:
    """Every ``uses:`` value: job-level (reusable workflows) and step-level."""
    for _, job in _jobs(workflow):
        if isinstance(job.get("uses"), str):
            yield job["uses"]
        steps = job.get("steps")
        if isinstance(steps, list):
            for step in steps:
                if isinstance(step, Mapping) and isinstance(step.get("uses"), str):
                    yield step["uses"]


# ------------------------------------------------------------------ actions-pinned
def _pin_problem(reference: str, comments: Mapping[str, list[str | None]]) -> str | None:
    if reference.startswith("./"):
        return None
    if reference.startswith("docker://"):
        return None if _DOCKER_DIGEST.match(reference) else "a docker:// image without @sha256:"
    _, at, ref = reference.partition("@")
    if not at or not _SHA.match(ref):
        return "not pinned to a full commit SHA"
    if not any(comment and _VERSION_COMMENT.search(comment) for comment in comments[reference]):
        return "pinned without a '# vX.Y.Z' comment naming the release"
    return None


def _actions_pinned(repo: Path) -> CheckResult:
    if missing := _no_workflows(repo):
        return missing
    problems: list[str] = []
    count = 0
    for path in workflow_files(repo):
        name = _relative(repo, path)
        text = path.read_text(encoding="utf-8")
        try:
            workflow = _load(path)
        except (yaml.YAMLError, ValueError) as error:
            problems.append(f"{name}: cannot be parsed: {first_lines(str(error), 1)}")
            continue
        comments: dict[str, list[str | None]] = {}
        for line in text.splitlines():
            if match := _USES_LINE.match(line):
                comments.setdefault(match["ref"], []).append(match["comment"])
        for reference in _uses(workflow):
            count += 1
            comments.setdefault(reference, [])
            if problem := _pin_problem(reference, comments):
                problems.append(f"{name}: {reference}: {problem}")
    if problems:
        return CheckResult(False, f"{len(problems)} unpinned: " + "; ".join(problems[:3]))
    return CheckResult(True, f"{count} uses: pinned to commit SHAs")


# ------------------------------------------------------------------ workflow-permissions
def _permission_problems(name: str, workflow: Mapping[Any, Any]) -> Iterator[str]:
    top = workflow.get("permissions")
    if top is None:
        yield f"{name}: no top-level permissions (the token gets the repository default)"
    elif not isinstance(top, Mapping):
        yield f"{name}: top-level permissions: {top} (list the scopes, e.g. contents: read)"
    else:
        writes = sorted(str(scope) for scope, level in top.items() if level == "write")
        if writes:
            yield f"{name}: top-level write scopes {', '.join(writes)} (grant them per job)"
    for job_name, job in _jobs(workflow):
        permissions = job.get("permissions")
        if isinstance(permissions, str):
            yield f"{name}: job {job_name}: permissions: {permissions} (list the scopes)"


def _workflow_permissions(repo: Path) -> CheckResult:
    if missing := _no_workflows(repo):
        return missing
    problems: list[str] = []
    for path in workflow_files(repo):
        name = _relative(repo, path)
        try:
            problems.extend(_permission_problems(name, _load(path)))
        except (yaml.YAMLError, ValueError) as error:
            problems.append(f"{name}: cannot be parsed: {first_lines(str(error), 1)}")
    if problems:
        return CheckResult(False, f"{len(problems)} problems: " + "; ".join(problems[:3]))
    return CheckResult(
        True, f"{len(workflow_files(repo))} workflows: read-only tokens, write scopes per job"
    )


def checks(repo: Path, answers: Mapping[str, Any]) -> list[Check]:
    """The GitHub Actions workflow checks."""
    inputs = (f"{WORKFLOWS_DIR.as_posix()}/",)
    return [
        Check(
            "actionlint",
            _actionlint,
            inputs=inputs,
            description="actionlint (with shellcheck on every run: script) finds nothing.",
        ),
        Check(
            "checkov-github-actions",
            _checkov_workflows,
            inputs=inputs,
            description="checkov's GitHub Actions policies pass and it scanned every workflow.",
        ),
        Check(
            "actions-pinned",
            _actions_pinned,
            inputs=inputs,
            description="Every action is pinned to a full commit SHA with a # vX.Y.Z comment.",
        ),
        Check(
            "workflow-permissions",
            _workflow_permissions,
            inputs=inputs,
            description="Workflows have read-only top-level tokens; write scopes are per job.",
        ),
    ]
