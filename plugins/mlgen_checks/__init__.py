"""mlgen's own checks of generated repositories, shipped as an ordinary plugin.

Each module of this package validates one kind of artifact with the tool its users run
(kubernetes-validate, kustomize, checkov, hadolint, actionlint, promtool, feast, ...)
and exposes ``checks(repo, answers) -> list[mlgen.Check]``. Backend-specific checks
belong to the backend plugins, through the same hook.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import mlgen

MLGEN_PLUGIN_API = 1


def _check_modules() -> list[Any]:
    return [
        importlib.import_module(f"{__name__}.{module.name}")
        for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
        if not module.name.startswith("_")  # helpers shared by the check modules
    ]


@mlgen.hookimpl
def mlgen_register_checks(
    register: Callable[[mlgen.Check], None], repo: Path, answers: Mapping[str, Any]
) -> None:
    """Register the artifact checks that apply to every generated repository."""
    for module in _check_modules():
        for check in module.checks(repo, answers):
            register(check)
