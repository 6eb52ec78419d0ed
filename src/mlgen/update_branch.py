"""``mlgen update --branch NAME [--push]``: each repository's update as a reviewable commit.

A clean update is applied on a new branch made from the current commit, committed there,
optionally pushed to ``origin``, and the repository is switched back to where it was: the
checkout the user works in does not move, the update waits on its branch (and, pushed, for
a pull request). A repository whose update conflicts is not touched at all.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from mlgen.errors import MlgenError
from mlgen.update import UpdatePlan, apply_plan

if TYPE_CHECKING:
    from mlgen.fleet import RepoOutcome, UpdateOptions


def _git(repo: Path, *arguments: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *arguments], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise MlgenError(f"git {arguments[0]} failed: {message[-1] if message else result}")
    return result.stdout.strip()


def default_message(plan: UpdatePlan) -> str:
    """The commit message: what moved, in a subject line and a body."""
    lines = [f"Update to template {plan.to_version} (mlgen update)", ""]
    lines.append(f"Template: {plan.from_version} -> {plan.to_version}")
    if plan.runtime_from != plan.runtime_to:
        lines.append(f"mlgen-runtime: {plan.runtime_from} -> {plan.runtime_to}")
    for name in sorted(set(plan.plugins_from) | set(plan.plugins_to)):
        old, new = plan.plugins_from.get(name, "-"), plan.plugins_to.get(name, "-")
        if old != new:
            lines.append(f"Plugin {name}: {old} -> {new}")
    return "\n".join(lines) + "\n"


def _where(repo: Path) -> str:
    """The branch checked out, or the commit of a detached HEAD."""
    branch = _git(repo, "rev-parse", "--abbrev-ref", "HEAD")
    return branch if branch != "HEAD" else _git(repo, "rev-parse", "HEAD")


def update_on_branch(plan: UpdatePlan, options: UpdateOptions) -> RepoOutcome:
    """Commit ``plan`` on ``options.branch`` (and push it); conflicts leave the repo alone."""
    from mlgen.fleet import outcome_of

    branch = str(options.branch)
    if plan.conflicts:
        return outcome_of(plan, "conflicts", "left alone: no branch, no commit")
    if not plan.changes:
        return outcome_of(plan, "up to date")
    repo = plan.repo
    _git(repo, "check-ref-format", "--branch", branch)
    original = _where(repo)
    _git(repo, "switch", "-q", "-c", branch)
    try:
        apply_plan(plan)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "--no-verify", "-m", options.message or default_message(plan))
    except BaseException:
        # apply_plan has rolled the files back: drop the branch, return where we were
        subprocess.run(["git", "-C", str(repo), "checkout", "-q", "-f", original], check=False)
        subprocess.run(["git", "-C", str(repo), "branch", "-q", "-D", branch], check=False)
        raise
    _git(repo, "checkout", "-q", original)
    detail = f"committed on {branch}"
    if options.push:
        try:
            _git(repo, "push", "-q", "origin", f"refs/heads/{branch}:refs/heads/{branch}")
        except MlgenError as error:
            return outcome_of(plan, "error", f"{detail}; push to origin failed: {error}", branch)
        detail += ", pushed to origin"
    return outcome_of(plan, "updated", detail, branch)
