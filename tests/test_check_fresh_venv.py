"""``pip install '.[check]'`` into a fresh virtual environment is all ``mlgen check`` needs.

The environment is made with the standard library's ``venv`` and only that pip install;
``mlgen check`` then runs with a PATH of that environment's ``bin`` and the system's
folders (kubectl and promtool are the system tools the docs name), so nothing from the
development environment (its uv, its validators) can stand in. Generated repositories
pin ``mlgen-runtime``, which is not on a public index: as a team would point the
environments at its own index, the test points them at the wheel built from this
checkout with ``$MLGEN_RUNTIME_FIND_LINKS``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlgen import runtime_dist
from mlgen.environments import cache_root
from mlgen.plugins import get_registry
from tests.conftest import REPO_ROOT
from tests.rendering import slow_tier_backends

pytestmark = pytest.mark.slow
BUILT_IN = [
    name
    for name in slow_tier_backends()
    if get_registry().backends[name].plugin.distribution == "mlgen"
]
"""The backends ``pip install mlgen`` brings (outside plugins are not in the fresh venv)."""
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", f"{REPO_ROOT}[check]"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return venv


def _environment(venv: Path, home: Path) -> dict[str, str]:
    wheel = runtime_dist.local_wheel(cache_root())
    assert wheel is not None, "this checkout has no runtime/ to build mlgen-runtime from"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "PYTHONPATH", "MLGEN_REPO_PYTHON", "MLGEN_RUNTIME_SOURCE")
    }
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{SYSTEM_PATH}",
        MLGEN_RUNTIME_FIND_LINKS=str(wheel.parent),
        MLGEN_CHECK_CACHE=str(home / "check-cache"),
        CI="1",
    )
    return env


@pytest.mark.parametrize("backend", BUILT_IN)
def test_mlgen_check_passes_from_a_fresh_venv(
    fresh_venv: Path, backend: str, tmp_path: Path
) -> None:
    env = _environment(fresh_venv, tmp_path)
    mlgen = str(fresh_venv / "bin" / "mlgen")
    repo = tmp_path / f"fresh-{backend}"
    subprocess.run(
        [mlgen, "new", str(repo), "--backend", backend, "--defaults"],
        check=True,
        env=env,
        capture_output=True,
    )
    result = subprocess.run(
        [mlgen, "check", str(repo)], env=env, capture_output=True, text=True, timeout=3600
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert ", 0 failed" in result.stdout
    again = subprocess.run(
        [mlgen, "check", str(repo)], env=env, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0 and "cached" in again.stdout.splitlines()[-1]
