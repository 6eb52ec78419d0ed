"""The mlgen plugin contract: hook markers and hook specifications.

A plugin is a module (or object) named by an entry point in the ``mlgen`` group. It
implements any of the hooks below, marking each implementation with ``@mlgen.hookimpl``,
and may declare ``MLGEN_PLUGIN_API = <major>``; mlgen refuses a plugin whose declared
major differs from :data:`PLUGIN_API_VERSION`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from mlgen.backend import Backend
    from mlgen.checks import Check
    from mlgen.contributions import FileContribution

PROJECT_NAME = "mlgen"
PLUGIN_API_VERSION = 1
"""Major version of this hook contract. It changes only when a hook changes incompatibly."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def mlgen_register_backends(register: Callable[[Backend], None]) -> None:
    """Register serving backends.

    Called once when mlgen loads its plugins. Call ``register(backend)`` for each
    :class:`mlgen.Backend` the plugin provides; two backends with the same name are an
    error naming both distributions. Returns nothing.
    """


@hookspec
def mlgen_contribute_files(answers: Mapping[str, Any]) -> Iterable[FileContribution] | None:
    """Contribute extra files to a repository being generated or updated.

    Called for every render with the copier answers (``serving_backend`` included). The
    selected backend's own ``templates_dir`` is contributed by mlgen already; use this
    hook for files that do not belong to one backend (or that depend on other answers).
    Return the :class:`mlgen.FileContribution` objects to add, or ``None``. Two
    contributions of the same path are an error naming both plugins.
    """


@hookspec
def mlgen_register_checks(
    register: Callable[[Check], None], repo: Path, answers: Mapping[str, Any]
) -> None:
    """Register checks that ``mlgen check`` runs on a generated repository.

    Called by ``mlgen check`` with the repository's path and its recorded answers.
    Call ``register(check)`` for each :class:`mlgen.Check`; a backend plugin usually
    registers checks only when ``answers["serving_backend"]`` is its own. Returns nothing.
    """


@hookspec
def mlgen_prepare_environment(environment: Path, repo: Path, answers: Mapping[str, Any]) -> None:
    """Prepare a Python environment before a repository's code runs in it.

    Called by mlgen whenever it hands an environment to checks, the contract suite or
    tests (:func:`mlgen.environments.repo_environment`, and
    :func:`~mlgen.environments.shared_environment` each time it hands one out: right
    after building one, before it is marked complete, and again on later calls), with
    the environment's root folder (its interpreter is ``environment / "bin" /
    "python"``), the repository and its recorded answers. Use it
    for what installing requirements does not do: compile a runtime's bytecode, write a
    configuration file the runtime reads. It may be called again for the same
    environment, so it must be idempotent and quick when there is nothing to do. A
    backend plugin usually acts only when ``answers["serving_backend"]`` is its own.
    Returns nothing.
    """
