"""Checks that ``mlgen check`` runs on a generated repository."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


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
        run: called with the repository's root; returns a :class:`CheckResult`.
        requires: Python modules the check imports; when one is missing the check fails
            with a message naming ``install_hint`` instead of crashing.
        install_hint: how to install what ``requires`` names.
    """

    name: str
    run: Callable[[Path], CheckResult]
    requires: tuple[str, ...] = ()
    install_hint: str = "pip install 'mlgen[check]'"
