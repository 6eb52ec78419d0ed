"""``mlgen update`` over many repositories: independent, parallel, one summary table.

Each repository is updated in its own worker process (forked from a preloaded forkserver,
so a worker starts in milliseconds). The scheduler never has more than ``jobs`` running and
starts nothing once SIGINT or SIGTERM has arrived: it forwards SIGTERM to the running
workers, each of which rolls its repository back (:meth:`mlgen.journal.Journal.rollback`)
and reports, and it reports the repositories it never started. So a stopped fleet run
leaves every repository either untouched or completely updated, and still prints its table.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from mlgen.errors import MlgenError
from mlgen.gitrepo import RESTORE_COMMAND
from mlgen.interrupt import Interrupted, flagging_on_signals, raising_on_signals
from mlgen.journal import RollbackError
from mlgen.template import ANSWERS_FILE
from mlgen.update import COUNTED, ConflictMode, UpdatePlan, apply_plan, plan_update

STOP_GRACE_SECONDS = 1.0
"""How long stopped workers get to roll back and report before they are killed."""

ATTENTION = ("conflicts", "would conflict", "error", "interrupted", "not started")


@dataclass(frozen=True)
class UpdateOptions:
    """What every repository of a fleet is updated with."""

    template: str | None = None
    vcs_ref: str | None = None
    data: tuple[tuple[str, Any], ...] = ()
    conflict_mode: ConflictMode = "inline"
    dry_run: bool = False
    branch: str | None = None
    push: bool = False
    message: str | None = None


@dataclass(frozen=True)
class RepoOutcome:
    """One row of the fleet summary (and one object of ``--json``)."""

    repo: str
    from_version: str = "-"
    to_version: str = "-"
    result: str = "error"
    detail: str = ""
    counts: tuple[tuple[str, int], ...] = ()
    conflicted: tuple[str, ...] = ()
    kept_edited: tuple[str, ...] = ()
    kept_deleted: tuple[str, ...] = ()
    plugins: tuple[tuple[str, str, str], ...] = ()  # (plugin, from, to)
    runtime_from: str = "-"
    runtime_to: str = "-"
    base: str = "-"
    branch: str = ""
    changes: tuple[tuple[str, str], ...] = ()

    @property
    def needs_attention(self) -> bool:
        return self.result in ATTENTION

    @property
    def interrupted(self) -> bool:
        return self.result in ("interrupted", "not started")

    def count(self, action: str) -> int:
        """How many files got ``action``."""
        return dict(self.counts).get(action, 0)

    def as_json(self) -> dict[str, Any]:
        """The outcome as plain JSON data."""
        data = asdict(self)
        data["counts"] = dict(self.counts)
        data["plugins"] = [
            {"plugin": name, "from": old, "to": new} for name, old, new in self.plugins
        ]
        data["changes"] = [{"action": action, "path": path} for action, path in self.changes]
        return data


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


def _plugin_rows(plan: UpdatePlan) -> tuple[tuple[str, str, str], ...]:
    names = sorted(set(plan.plugins_from) | set(plan.plugins_to))
    return tuple(
        (name, plan.plugins_from.get(name, "-"), plan.plugins_to.get(name, "-")) for name in names
    )


def outcome_of(plan: UpdatePlan, result: str, detail: str = "", branch: str = "") -> RepoOutcome:
    """The summary row of a planned (and maybe applied) update."""
    return RepoOutcome(
        repo=str(plan.repo),
        from_version=plan.from_version,
        to_version=plan.to_version,
        result=result,
        detail=detail,
        counts=tuple((action, plan.count(action)) for action in COUNTED),
        conflicted=tuple(plan.paths("conflict")),
        kept_edited=tuple(plan.paths("kept-edited")),
        kept_deleted=tuple(plan.paths("kept-deleted")),
        plugins=_plugin_rows(plan),
        runtime_from=plan.runtime_from,
        runtime_to=plan.runtime_to,
        base=plan.base_source,
        branch=branch,
        changes=tuple((change.action, change.path) for change in plan.changes),
    )


def _result(plan: UpdatePlan, dry_run: bool) -> str:
    if plan.conflicts:
        return "would conflict" if dry_run else "conflicts"
    if not plan.changes:
        return "up to date"
    return "would update" if dry_run else "updated"


def update_one(repo: Path, options: UpdateOptions) -> RepoOutcome:
    """Update one repository; any failure becomes a row (``error``, ``interrupted``)."""
    plan: UpdatePlan | None = None
    try:
        plan = plan_update(
            repo,
            template=options.template,
            vcs_ref=options.vcs_ref,
            data=dict(options.data),
            conflict_mode=options.conflict_mode,
        )
        if options.dry_run:
            return outcome_of(plan, _result(plan, True))
        if options.branch:
            from mlgen.update_branch import update_on_branch

            return update_on_branch(plan, options)
        if plan.changes:
            apply_plan(plan)
        return outcome_of(plan, _result(plan, False))
    except (Interrupted, KeyboardInterrupt):
        detail = "stopped before writing" if plan is None else "stopped; rolled back, untouched"
        return RepoOutcome(str(repo), result="interrupted", detail=detail)
    except RollbackError as error:
        return RepoOutcome(str(repo), result="interrupted", detail=str(error))
    except MlgenError as error:
        return RepoOutcome(str(repo), result="error", detail=str(error))
    except Exception as error:  # one repository's failure must not stop the fleet
        return RepoOutcome(str(repo), result="error", detail=f"{type(error).__name__}: {error}")


def _worker(repo: Path, options: UpdateOptions, connection: Connection) -> None:
    """A worker process: one update, then its row through ``connection``."""
    with raising_on_signals() as state:
        try:
            outcome = update_one(repo, options)
        except Interrupted:  # the signal arrived between update_one's steps
            outcome = RepoOutcome(str(repo), result="interrupted", detail="stopped")
        state.disarm()  # the update is over: a late signal must not lose its row
        connection.send(outcome)
        connection.close()
    # Nothing left to flush: skip the interpreter's teardown, which on a loaded machine
    # can take longer than the whole stop is allowed to.
    os._exit(0)


def _not_started(repo: Path) -> RepoOutcome:
    return RepoOutcome(str(repo), result="not started", detail="stopped before it began")


def _update_sequentially(
    repos: list[Path],
    options: UpdateOptions,
    on_start: Callable[[Path], None] | None,
    on_done: Callable[[RepoOutcome], None] | None,
) -> list[RepoOutcome]:
    outcomes: list[RepoOutcome] = []
    with raising_on_signals() as state:
        for repo in repos:
            if state.received is not None:
                outcomes.append(_not_started(repo))
                continue
            if on_start:
                on_start(repo)
            try:
                outcome = update_one(repo, options)
            except Interrupted:
                outcome = RepoOutcome(str(repo), result="interrupted", detail="stopped")
            outcomes.append(outcome)
            if on_done:
                on_done(outcome)
    return outcomes


@dataclass
class _Running:
    index: int
    process: Any  # multiprocessing.process.BaseProcess
    connection: Connection


def _without_row(repo: Path, exitcode: int | None, stopping: bool) -> RepoOutcome:
    """The row of a worker that ended without reporting (say, a signal before its handler
    was in place): interrupted if the run is stopping, else an error; either way it says
    whether the repository is untouched."""
    status = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True
    )
    clean = status.returncode == 0 and not status.stdout.strip()
    state = "untouched" if clean else f"check it and restore with `{RESTORE_COMMAND}`"
    if stopping:
        return RepoOutcome(str(repo), result="interrupted", detail=f"stopped; {state}")
    return RepoOutcome(
        str(repo), result="error", detail=f"worker ended with exit code {exitcode}; {state}"
    )


def _collect(
    running: dict[int, _Running],
    slots: list[RepoOutcome | None],
    repos: list[Path],
    timeout: float,
    stopping: Callable[[], bool] = lambda: False,
) -> list[int]:
    """Wait up to ``timeout`` for workers; store their rows; return the finished indexes."""
    handles: list[Any] = []
    for job in running.values():
        handles.extend((job.connection, job.process.sentinel))
    finished = []
    ready = wait(handles, timeout=timeout) if handles else []
    for index, job in list(running.items()):
        if job.connection in ready or job.process.sentinel in ready:
            try:
                slots[index] = job.connection.recv()
            except (EOFError, OSError):
                job.process.join()
                slots[index] = _without_row(repos[index], job.process.exitcode, stopping())
            job.process.join()
            job.connection.close()
            finished.append(index)
    for index in finished:
        del running[index]
    return finished


def update_fleet(
    repos: list[Path],
    options: UpdateOptions,
    jobs: int | None = None,
    on_done: Callable[[RepoOutcome], None] | None = None,
    on_start: Callable[[Path], None] | None = None,
) -> list[RepoOutcome]:
    """Update every repository, ``jobs`` at a time (default: one per CPU core).

    ``on_start(repo)`` and ``on_done(outcome)`` are called in this process as each
    repository starts and finishes (the CLI shows progress with them).
    SIGINT/SIGTERM stop the run (see the module docstring); the rows then say
    ``interrupted`` or ``not started`` for the repositories it did not finish.
    """
    workers = max(1, min(jobs or os.cpu_count() or 1, len(repos)))
    if workers == 1:
        return _update_sequentially(repos, options, on_start, on_done)
    # forkserver: never fork a process that may already run threads (copier, git); the
    # preload makes each worker a cheap fork of a process that has mlgen imported.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["mlgen.fleet", "mlgen.update_branch"])
    slots: list[RepoOutcome | None] = [None] * len(repos)
    pending = deque(range(len(repos)))
    running: dict[int, _Running] = {}
    with flagging_on_signals() as state:
        while (pending or running) and state.received is None:
            while pending and len(running) < workers and state.received is None:
                index = pending.popleft()
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(
                    target=_worker, args=(repos[index], options, sender), daemon=True
                )
                process.start()
                sender.close()
                running[index] = _Running(index, process, receiver)
                if on_start:
                    on_start(repos[index])
            for index in _collect(
                running, slots, repos, timeout=0.1, stopping=lambda: state.received is not None
            ):
                if on_done and slots[index] is not None:
                    on_done(slots[index])  # type: ignore[arg-type]
        if state.received is not None:
            _stop(running, slots, repos)
    for index in pending:
        slots[index] = _not_started(repos[index])
    return [slot if slot is not None else _not_started(repos[i]) for i, slot in enumerate(slots)]


def _stop(running: dict[int, _Running], slots: list[RepoOutcome | None], repos: list[Path]) -> None:
    """Ask the running workers to roll back and report; kill those that do not in time."""
    for job in running.values():
        if job.process.is_alive():
            os.kill(job.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while running and time.monotonic() < deadline:
        remaining = max(0.0, deadline - time.monotonic())
        _collect(running, slots, repos, timeout=remaining, stopping=lambda: True)
    for index, job in running.items():
        job.process.kill()
        job.process.join()
        slots[index] = RepoOutcome(
            str(repos[index]),
            result="interrupted",
            detail=f"killed mid-update; check it and restore with `{RESTORE_COMMAND}`",
        )
    running.clear()


def progress_line(outcome: RepoOutcome) -> str:
    """The line a finished repository leaves in the progress output."""
    counts = ", ".join(f"{count} {action}" for action, count in outcome.counts if count)
    detail = outcome.detail or counts
    return f"{outcome.repo}: {outcome.result}" + (f" ({detail})" if detail else "")


def _short(old: str, new: str) -> tuple[str, str]:
    """``"dist 1.0"``, ``"dist 1.1"`` -> ``"1.0"``, ``"1.1"`` (the distribution when it moved)."""
    old_dist, _, old_version = old.rpartition(" ")
    new_dist, _, new_version = new.rpartition(" ")
    if old_dist == new_dist:
        return old_version, new_version
    return old.replace(" ", "-"), new.replace(" ", "-")


def _plugins_cell(outcome: RepoOutcome) -> str:
    """``name=from->to`` for each plugin (no spaces: one table cell)."""
    cells = []
    for name, old, new in outcome.plugins:
        short_old, short_new = _short(old, new)
        cells.append(f"{name}={_arrow(short_old, short_new)}")
    return ",".join(cells) or "-"


def _arrow(old: str, new: str) -> str:
    return old if old == new else f"{old}->{new}"


SUMMARY_HEADER = ["repo", "template", "runtime", "plugins", *COUNTED, "result"]


def summary_rows(outcomes: list[RepoOutcome]) -> list[list[str]]:
    """The summary table: header, then one row per repository."""
    rows = [list(SUMMARY_HEADER)]
    for outcome in outcomes:
        result = outcome.result + (f": {outcome.detail}" if outcome.detail else "")
        rows.append(
            [
                outcome.repo,
                _arrow(outcome.from_version, outcome.to_version),
                _arrow(outcome.runtime_from, outcome.runtime_to),
                _plugins_cell(outcome),
                *(str(outcome.count(action)) for action in COUNTED),
                result,
            ]
        )
    return rows


def file_lines(outcomes: list[RepoOutcome]) -> list[str]:
    """Below the table: which files conflicted or were kept, per repository."""
    lines = []
    for outcome in outcomes:
        for label, paths in (
            ("conflict", outcome.conflicted),
            ("kept as edited", outcome.kept_edited),
            ("kept deleted", outcome.kept_deleted),
        ):
            if paths:
                lines.append(f"{outcome.repo}: {label}: {', '.join(paths)}")
    return lines


def options_from(data: Mapping[str, Any], **kwargs: Any) -> UpdateOptions:
    """Build options with ``data`` frozen into a hashable, picklable tuple."""
    return UpdateOptions(data=tuple(sorted(data.items())), **kwargs)
