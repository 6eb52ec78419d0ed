"""``mlgen check``: collect the checks plugins register for a repository and run them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mlgen.checks import Check, CheckResult, run_check
from mlgen.errors import PluginError
from mlgen.plugins import PluginRegistry, get_registry
from mlgen.template import recorded_answers


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


def run_checks(
    repo: Path, registry: PluginRegistry | None = None, only: tuple[str, ...] = ()
) -> Iterator[tuple[Check, CheckResult]]:
    """Run the collected checks (or those named in ``only``), yielding each result."""
    for check in collect_checks(repo, registry):
        if only and check.name not in only:
            continue
        yield check, run_check(check, repo)
