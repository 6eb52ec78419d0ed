"""Shared fixtures: the template under test and a folder of fake plugin distributions."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgen import plugins

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True, scope="session")
def _check_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``mlgen check`` run by tests keeps its result cache in the session's folder."""
    previous = os.environ.get("MLGEN_CHECK_CACHE")
    os.environ["MLGEN_CHECK_CACHE"] = str(tmp_path_factory.mktemp("check-cache"))
    yield
    if previous is None:
        os.environ.pop("MLGEN_CHECK_CACHE", None)
    else:
        os.environ["MLGEN_CHECK_CACHE"] = previous


@pytest.fixture(scope="session")
def template_root() -> Path:
    """The checkout's own template (copier.yml at the repository root)."""
    return REPO_ROOT


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path and PYTHONPATH where tests install fake plugin distributions.

    The cached plugin registry is reset before and after, so each test sees exactly the
    plugins it installed (plus the built-ins).
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    )
    plugins.get_registry.cache_clear()
    yield site
    plugins.get_registry.cache_clear()
    for name in [name for name in sys.modules if name.endswith("_plugin")]:
        del sys.modules[name]


class BuiltRepos:
    """Generated repositories with their shared environments, one per backend per session."""

    def __init__(self, root: Path, template: Path) -> None:
        self._root = root
        self._template = template
        self._built: dict[str, tuple[Path, Path]] = {}

    def get(
        self, backend: str, framework: str | None = None, share_with: tuple[str, ...] = ()
    ) -> tuple[Path, Path]:
        """Return ``(repo, environment)`` for ``backend`` (and a ``model_framework``
        answer; default: the backend's), rendering and installing once. The environment
        also satisfies the repositories of ``backend`` with the ``share_with``
        frameworks, so those share it."""
        key = f"{backend}-{framework}" if framework else backend
        if key not in self._built:
            from mlgen.environments import shared_environment

            repo = self._render(backend, framework)
            others = [self._render(backend, other) for other in share_with if other != framework]
            self._built[key] = (repo, shared_environment(repo, also=others))
        return self._built[key]

    def _render(self, backend: str, framework: str | None) -> Path:
        from tests.rendering import render

        answers = {"model_framework": framework} if framework else {}
        name = f"{backend}-{framework}" if framework else backend
        destination = self._root / name
        if destination.is_dir():
            return destination
        return render(self._template, destination, serving_backend=backend, **answers)


@pytest.fixture(scope="session")
def built_repos(tmp_path_factory: pytest.TempPathFactory, template_root: Path) -> BuiltRepos:
    """Session-wide generated repositories (the slow tier shares their environments)."""
    return BuiltRepos(tmp_path_factory.mktemp("generated"), template_root)


@pytest.fixture(scope="session")
def versioned_template(tmp_path_factory: pytest.TempPathFactory, template_root: Path) -> Path:
    """A git repository with the real template at tag v1, and with a change at tag v2."""
    from tests.versioned import build_versioned_template

    return build_versioned_template(tmp_path_factory.mktemp("versioned"), template_root)
