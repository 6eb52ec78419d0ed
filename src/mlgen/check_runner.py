"""``mlgen check``: collect the checks plugins register for a repository and run them.

Checks are independent, so they run in parallel threads (each mostly waits on a
validator's process). With a :class:`~mlgen.check_cache.CheckCache` a check whose inputs
did not change since it last passed is not run again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from mlgen.check_cache import CheckCache, RepoFiles, check_key
from mlgen.checks import Check, CheckResult, run_check
from mlgen.errors import MlgenError, PluginError
from mlgen.plugins import PluginRegistry, get_registry
from mlgen.template import recorded_answers

Status = Literal["pass", "fail", "skipped"]


@dataclass(frozen=True)
class CheckOutcome:
    """What happened to one check: its result (None when skipped), time and cache use."""

    check: Check
    status: Status
    result: CheckResult | None = None
    seconds: float = 0.0
    cached: bool = False

    @property
    def detail(self) -> str:
        """The result's detail, or why the check did not run."""
        return self.result.detail if self.result else "skipped (--only/--skip)"


class CheckListener(Protocol):
    """Told when each check starts and finishes (called from worker threads)."""

    def started(self, check: Check) -> None: ...

    def finished(self, outcome: CheckOutcome) -> None: ...


class UnknownCheck(MlgenError):
    """``--only`` or ``--skip`` names a check that is not registered."""

    def __init__(self, unknown: Sequence[str], known: Sequence[str]) -> None:
        self.unknown = tuple(unknown)
        self.known = tuple(known)
        super().__init__(
            f"no check is called {', '.join(unknown)}; the checks are: {', '.join(known)}"
        )


def collect_checks(repo: Path, registry: PluginRegistry | None = None) -> list[Check]:
    """Every check the installed plugins register for ``repo``, in plugin order."""
    registry = registry or get_registry()
    answers = recorded_answers(repo)
    checks: list[Check] = []
    hook = registry.manager.hook.mlgen_register_checks
    for implementation in reversed(hook.get_hookimpls()):
        arguments = {"register": checks.append, "repo": repo, "answers": answers}
        try:
            implementation.function(*(arguments[name] for name in implementation.argnames))
        except Exception as error:
            plugin = registry.plugins.get(implementation.plugin_name)
            label = plugin.label if plugin else repr(implementation.plugin_name)
            raise PluginError(
                f"{label} failed while registering checks: {type(error).__name__}: {error}"
            ) from error
    names = [check.name for check in checks]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise PluginError(f"more than one check is called {', '.join(duplicates)}; rename one")
    return checks


def validate_names(checks: Iterable[Check], *selections: Iterable[str]) -> None:
    """Raise :class:`UnknownCheck` when a selection names a check that does not exist."""
    known = [check.name for check in checks]
    unknown = [name for names in selections for name in names if name not in known]
    if unknown:
        raise UnknownCheck(list(dict.fromkeys(unknown)), known)


def selected(check: Check, only: Iterable[str], skip: Iterable[str]) -> bool:
    """Whether ``--only``/``--skip`` let ``check`` run."""
    only = tuple(only)
    return (not only or check.name in only) and check.name not in tuple(skip)


def default_jobs() -> int:
    """Threads to run checks in: checks mostly wait on a validator's process."""
    return (os.cpu_count() or 1) + 2


def execute(
    repo: Path,
    checks: Sequence[Check],
    *,
    only: Iterable[str] = (),
    skip: Iterable[str] = (),
    jobs: int | None = None,
    cache: CheckCache | None = None,
    listener: CheckListener | None = None,
) -> list[CheckOutcome]:
    """Run the selected ``checks`` on ``repo`` in parallel; outcomes in ``checks`` order.

    Skipped checks are listed too (status ``skipped``). With ``cache``, a check whose
    key (:func:`mlgen.check_cache.check_key`) has a stored pass is not run; checks
    that took longest last time start first, so the slowest one does not start last.
    """
    only, skip = tuple(only), tuple(skip)
    files = RepoFiles(repo) if cache is not None else None
    answers = recorded_answers(repo) if any(check.takes_answers for check in checks) else None
    timings = cache.last_seconds() if cache is not None else {}
    outcomes: dict[str, CheckOutcome] = {}

    def one(check: Check) -> CheckOutcome:
        if listener:
            listener.started(check)
        start = time.monotonic()
        key = check_key(check, files) if cache is not None and files is not None else None
        stored = cache.get(key) if cache is not None and key and check.cacheable else None
        if stored is not None:
            outcome = CheckOutcome(check, "pass", stored, time.monotonic() - start, cached=True)
        else:
            try:
                result = run_check(check, repo, answers)
            except Exception as error:  # a crashing check is a failed check, not a crash
                result = CheckResult(False, f"the check crashed: {type(error).__name__}: {error}")
            if cache is not None and key and check.cacheable:
                cache.put(key, result)
            status: Status = "pass" if result.ok else "fail"
            outcome = CheckOutcome(check, status, result, time.monotonic() - start)
        if listener:
            listener.finished(outcome)
        return outcome

    to_run = [check for check in checks if selected(check, only, skip)]
    to_run.sort(key=lambda check: -timings.get(check.name, 0.0))
    with ThreadPoolExecutor(max_workers=jobs or default_jobs()) as pool:
        for outcome in pool.map(one, to_run):
            outcomes[outcome.check.name] = outcome
    if cache is not None:
        cache.record_seconds(
            {name: o.seconds for name, o in outcomes.items() if not o.cached and o.result}
        )
    return [outcomes.get(check.name) or CheckOutcome(check, "skipped") for check in checks]


def run_checks(
    repo: Path,
    registry: PluginRegistry | None = None,
    only: tuple[str, ...] = (),
    skip: tuple[str, ...] = (),
    *,
    jobs: int | None = None,
    cache: CheckCache | None = None,
) -> Iterator[tuple[Check, CheckResult]]:
    """Run the collected checks (those named in ``only``, minus ``skip``) and yield each
    check that ran with its result, in registration order. Unknown names are ignored."""
    outcomes = execute(
        repo, collect_checks(repo, registry), only=only, skip=skip, jobs=jobs, cache=cache
    )
    for outcome in outcomes:
        if outcome.result is not None:
            yield outcome.check, outcome.result
