"""Checks that ``mlgen check`` runs on a generated repository, and the runner."""

from __future__ import annotations

import importlib.util
import inspect
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgen.errors import MlgenError

CHECK_EXTRA_HINT = "pip install 'mlgen[check]'"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: passed or not, and one line of detail."""

    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Check:
    """A named check of a generated repository.

    Attributes:
        name: short name printed by ``mlgen check`` (e.g. ``kubernetes-validate``).
        run: called with the repository's root, and with the repository's recorded
            answers as ``answers=`` when it has a parameter called ``answers``
            (``def run(repo, answers)``); returns a :class:`CheckResult`. It may raise
            :class:`ToolMissing` (see :func:`find_tool`) when a validator is absent. A
            check that takes the answers also reads ``.copier-answers.yml``: its cached
            result is invalidated when they change.
        requires: Python modules the check imports; when one is missing the check fails
            with a message naming ``install_hint`` instead of crashing.
        install_hint: how to install what ``requires`` names.
        inputs: what ``run`` reads, as paths relative to the repository: a file
            (``Dockerfile``), a folder ending in ``/`` (every file below it) or a glob
            whose ``*`` also crosses ``/`` (``*.py``: every Python file). A passed result
            is reused while none of them changes; ``()`` means every file of the
            repository (outside ``.git``, ``.venv`` and caches).
        cacheable: ``False`` when the result depends on more than the inputs (a
            server, the network, the clock): the check then runs every time.
        description: one sentence saying what the check verifies, shown in JUnit and
            SARIF reports (the rule's description) and by ``mlgen check --list``.
    """

    name: str
    run: Callable[..., CheckResult]
    requires: tuple[str, ...] = ()
    install_hint: str = CHECK_EXTRA_HINT
    inputs: tuple[str, ...] = ()
    cacheable: bool = True
    description: str = ""

    @property
    def takes_answers(self) -> bool:
        """Whether :attr:`run` is called with ``answers=``."""
        return _takes_answers(self.run)


def _takes_answers(run: Callable[..., CheckResult]) -> bool:
    try:
        return "answers" in inspect.signature(run).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False


class ToolMissing(MlgenError):
    """A validator a check needs is not installed."""

    def __init__(self, tool: str, hint: str = CHECK_EXTRA_HINT) -> None:
        super().__init__(f"{tool} is not installed; install it with: {hint}")


def find_tool(name: str, hint: str = CHECK_EXTRA_HINT) -> str:
    """Path of executable ``name``: beside this Python first, then on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(name, hint)
    return found


def run_tool(
    command: Sequence[str], cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a validator and capture its output (never raises on a non-zero exit)."""
    return subprocess.run(
        list(command), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def first_lines(text: str, count: int = 3) -> str:
    """The first non-empty lines of a tool's output, joined into one line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[:count])


def run_check(check: Check, repo: Path, answers: Mapping[str, Any] | None = None) -> CheckResult:
    """Run one check, turning a missing tool or module into a failed result.

    ``answers`` are the repository's recorded answers (read from it when ``None`` and
    the check takes them)."""
    for module in check.requires:
        if importlib.util.find_spec(module) is None:
            return CheckResult(
                False, f"{module} is not installed; install it with: {check.install_hint}"
            )
    try:
        if check.takes_answers:
            if answers is None:
                from mlgen.template import recorded_answers

                answers = recorded_answers(repo)
            return check.run(repo, answers=answers)
        return check.run(repo)
    except ToolMissing as missing:
        return CheckResult(False, str(missing))
