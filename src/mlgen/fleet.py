"""``mlgen update`` over many repositories: independent, parallel, one summary table."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgen.errors import MlgenError
from mlgen.template import ANSWERS_FILE
from mlgen.update import ConflictMode, UpdatePlan, apply_plan, plan_update


@dataclass(frozen=True)
class UpdateOptions:
    """What every repository of a fleet is updated with."""

    template: str | None = None
    vcs_ref: str | None = None
    data: tuple[tuple[str, Any], ...] = ()
    conflict_mode: ConflictMode = "inline"
    dry_run: bool = False


@dataclass(frozen=True)
class RepoOutcome:
    """One row of the fleet summary."""

    repo: str
    from_version: str = "-"
    to_version: str = "-"
    merged: int = 0
    conflicts: int = 0
    result: str = "error"
    detail: str = ""
    changes: tuple[tuple[str, str], ...] = ()

    @property
    def needs_attention(self) -> bool:
        return self.result not in ("updated", "up to date", "would update")


def expand_targets(paths: Iterable[Path], listing: Path | None = None) -> list[Path]:
    """Repositories named directly, in a listing file (one path a line, ``#`` comments),
    or found one level below a folder that is not itself a repository."""
    targets: list[Path] = []
    candidates = list(paths)
    if listing is not None:
        for line in listing.read_text(encoding="utf-8").splitlines():
            entry = line.split("#", 1)[0].strip()
            if entry:
                path = Path(entry)
                candidates.append(path if path.is_absolute() else listing.parent / path)
    for path in candidates:
        if (path / ANSWERS_FILE).is_file() or not path.is_dir():
            targets.append(path)
            continue
        found = sorted(child for child in path.iterdir() if (child / ANSWERS_FILE).is_file())
        if not found:
            raise MlgenError(f"{path} is neither a generated repository nor a folder of them")
        targets.extend(found)
    unique: dict[Path, None] = {}
    for target in targets:
        unique.setdefault(target.resolve(), None)
    return list(unique)


def _outcome(plan: UpdatePlan, dry_run: bool) -> RepoOutcome:
    changes = tuple((change.action, change.path) for change in plan.changes)
    if plan.conflicts:
        result = "conflicts" if not dry_run else "would conflict"
    elif not plan.changes:
        result = "up to date"
    else:
        result = "would update" if dry_run else "updated"
    return RepoOutcome(
        str(plan.repo),
        plan.from_version,
        plan.to_version,
        plan.count("merged"),
        plan.conflicts,
        result,
        "",
        changes,
    )


def update_one(repo: Path, options: UpdateOptions) -> RepoOutcome:
    """Update one repository; any failure becomes an ``error`` row, never an exception."""
    try:
        plan = plan_update(
            repo,
            template=options.template,
            vcs_ref=options.vcs_ref,
            data=dict(options.data),
            conflict_mode=options.conflict_mode,
        )
        if not options.dry_run:
            apply_plan(plan)
        return _outcome(plan, options.dry_run)
    except MlgenError as error:
        return RepoOutcome(str(repo), result="error", detail=str(error))
    except Exception as error:  # one repository's failure must not stop the fleet
        return RepoOutcome(str(repo), result="error", detail=f"{type(error).__name__}: {error}")


def update_fleet(
    repos: list[Path],
    options: UpdateOptions,
    jobs: int | None = None,
    on_done: Callable[[RepoOutcome], None] | None = None,
) -> list[RepoOutcome]:
    """Update every repository, ``jobs`` at a time (default: one per CPU core)."""
    workers = max(1, min(jobs or os.cpu_count() or 1, len(repos)))
    if workers == 1:
        outcomes = []
        for repo in repos:
            outcomes.append(update_one(repo, options))
            if on_done:
                on_done(outcomes[-1])
        return outcomes
    # forkserver: never fork a process that may already run threads (copier, git).
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(update_one, repo, options) for repo in repos]
        outcomes = []
        for future in futures:
            outcomes.append(future.result())
            if on_done:
                on_done(outcomes[-1])
        return outcomes


def summary_rows(outcomes: list[RepoOutcome]) -> list[list[str]]:
    """The summary table: header, then one row per repository."""
    rows = [["repo", "from", "to", "merged", "conflicts", "result"]]
    for outcome in outcomes:
        result = outcome.result + (f": {outcome.detail}" if outcome.detail else "")
        rows.append(
            [
                outcome.repo,
                outcome.from_version,
                outcome.to_version,
                str(outcome.merged),
                str(outcome.conflicts),
                result,
            ]
        )
    return rows


def options_from(data: Mapping[str, Any], **kwargs: Any) -> UpdateOptions:
    """Build options with ``data`` frozen into a hashable, picklable tuple."""
    return UpdateOptions(data=tuple(sorted(data.items())), **kwargs)
