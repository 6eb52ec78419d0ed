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
