"""Python environments for generated repositories, built with uv and shared by hash.

Generated repositories of one backend need the same heavy packages (onnxruntime, torch,
TensorFlow, ...). An environment is keyed by the hash of the repository's declared
dependencies, built once into a cache folder and reused by every repository (and every
test) that declares the same ones. The repository's own code is not installed into it:
its tests run with ``src`` on the path (the template sets pytest's ``pythonpath``).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlgen import live_status, runtime_dist
from mlgen.errors import MlgenError

if TYPE_CHECKING:
    from mlgen.plugins import PluginRegistry

CACHE_ENV = "MLGEN_ENV_CACHE"
LOCAL_WHEELS = Path("/opt/wheels")
"""A folder of prebuilt wheels some machines carry (CPU torch): used as uv find-links
when present and ``UV_FIND_LINKS`` is not set, so torch resolves to the local CPU build
instead of a multi-GB CUDA download."""
_COMPLETE_MARKER = ".mlgen-complete"
_RUNTIME_MARKER = ".mlgen-runtime"


def cache_root() -> Path:
    """Where shared environments live (``$MLGEN_ENV_CACHE`` or ``~/.cache/mlgen/envs``)."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlgen" / "envs"


def uv_binary() -> str:
    """The uv executable: the one installed with mlgen's test extra, else one on PATH."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise MlgenError(
                "uv is not installed; it comes with the check extra: pip install 'mlgen[check]'"
                " (or: pip install uv)"
            ) from None
        return found


def declared_requirements(repo: Path, extras: tuple[str, ...] = ("dev",)) -> list[str]:
    """The runtime requirements plus the given extras from a repository's pyproject.toml."""
    project = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        requirements += optional.get(extra, [])
    return sorted(set(requirements))


def environment_key(requirements: list[str], python: str) -> str:
    """A short stable name for an environment with these requirements."""
    digest = hashlib.sha256("\n".join([python, *requirements]).encode()).hexdigest()
    return digest[:16]


def python_in(environment: Path) -> Path:
    """The interpreter of an environment."""
    return environment / "bin" / "python"


def shared_environment(
    repo: Path,
    extras: tuple[str, ...] = ("dev",),
    python: str | None = None,
    also: Sequence[Path] = (),
) -> Path:
    """Return an environment with ``repo``'s requirements, building it on first use.

    ``also`` names other repositories whose requirements the environment must satisfy
    too: repositories that differ in a light dependency or two (LightGBM or XGBoost
    beside the same ONNX stack) then share one environment, whichever asks first.

    Concurrent callers wait on a lock file; a half-built environment (an interrupted
    build) has no completion marker and is rebuilt from scratch. ``mlgen-runtime`` comes
    from the checkout's ``runtime/`` when there is one (:mod:`mlgen.runtime_dist`): the
    environment is keyed by the runtime's declared dependencies too, and a changed
    runtime source is reinstalled into it (without its dependencies) on the next call.
    The plugins' ``mlgen_prepare_environment`` hook runs on it at every call (before it
    is marked complete when it is built).
    """
    python = python or f"{sys.version_info.major}.{sys.version_info.minor}"
    requirements = sorted(
        {r for path in (repo, *also) for r in declared_requirements(path, extras)}
    )
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    needs_runtime = any(_names_runtime(requirement) for requirement in requirements)
    source = runtime_dist.runtime_source() if needs_runtime else None
    key_parts = list(requirements)
    if source is not None:
        key_parts.append(f"runtime-metadata={runtime_dist.metadata_digest(source)}")
    links = runtime_dist.find_links(root) if needs_runtime else []
    environment = root / environment_key(key_parts, python)
    with (root / f"{environment.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        uv = uv_binary()
        interpreter = str(python_in(environment))
        built = False
        if not (environment / _COMPLETE_MARKER).is_file():
            shutil.rmtree(environment, ignore_errors=True)
            label = f"environment {environment.name}"
            with live_status.step(f"{label}: creating (Python {python})"):
                _run([uv, "venv", "--quiet", "--python", python, str(environment)])
            with live_status.step(f"{label}: installing {len(requirements)} requirements"):
                # Bytecode compiled now: imports (Feast, TensorFlow) would otherwise compile
                # on every run wherever PYTHONDONTWRITEBYTECODE is set.
                install = [uv, "pip", "install", "--quiet", "--compile-bytecode"]
                _run([*install, "--python", interpreter, *links, *requirements])
            with live_status.step(f"{label}: preparing (plugins' mlgen_prepare_environment)"):
                prepare_environment(environment, repo)
            (environment / _COMPLETE_MARKER).write_text("\n".join(requirements) + "\n")
            built = True
        if needs_runtime:
            # The runtime of this checkout, or the wheel handed over by find-links: a
            # changed build of the same version replaces the installed one.
            wheel = runtime_dist.local_wheel(root) if source else runtime_dist.linked_wheel()
            marker = environment / _RUNTIME_MARKER
            if wheel is not None and (
                not marker.is_file()
                or marker.read_text(encoding="utf-8") != wheel.name + wheel.parent.name
            ):
                _run(
                    [
                        uv,
                        "pip",
                        "install",
                        "--quiet",
                        "--python",
                        interpreter,
                        "--no-deps",
                        "--reinstall-package",
                        runtime_dist.DISTRIBUTION,
                        str(wheel),
                    ]
                )
                marker.write_text(wheel.name + wheel.parent.name, encoding="utf-8")
        if not built:  # a preparation a plugin (or this runtime) gained since the build
            prepare_environment(environment, repo)
    return environment


def prepare_environment(
    environment: Path, repo: Path, registry: PluginRegistry | None = None
) -> None:
    """Let the plugins (default: the installed ones) prepare ``environment`` for
    ``repo``'s code (the ``mlgen_prepare_environment`` hook); a plugin that fails is an
    error naming it."""
    from mlgen.plugins import call_each, get_registry
    from mlgen.template import recorded_answers

    registry = registry or get_registry()
    try:
        answers = recorded_answers(repo)
    except MlgenError:  # not a generated repository (yet): nothing to prepare for
        return
    labels = {name: info.label for name, info in registry.plugins.items()}
    call_each(
        registry.manager,
        "mlgen_prepare_environment",
        labels=labels,
        environment=environment,
        repo=repo,
        answers=answers,
    )


def _names_runtime(requirement: str) -> bool:
    name = re.split(r"[\s\[<>=~!;]", requirement, maxsplit=1)[0]
    return name.lower().replace("_", "-") == runtime_dist.DISTRIBUTION


def _uv_environment() -> dict[str, str]:
    environment = dict(os.environ)
    if "UV_FIND_LINKS" not in environment and LOCAL_WHEELS.is_dir():
        environment["UV_FIND_LINKS"] = str(LOCAL_WHEELS)
    return environment


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, env=_uv_environment())
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise MlgenError(f"{' '.join(command[:3])} failed: {' | '.join(tail)}")


def run_in_repo(
    repo: Path,
    environment: Path,
    command: list[str],
    *,
    capture: bool = True,
    timeout: float = 1800,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a generated repository with a shared environment active.

    ``python`` in ``command`` means the environment's interpreter; the repository's
    ``src`` folder is put on ``PYTHONPATH`` since the shared environment does not
    contain the repository's own package.
    """
    env = repo_process_environment(repo, environment, extra_env)
    argv = [str(python_in(environment)) if part == "python" else part for part in command]
    return subprocess.run(
        argv, cwd=repo, env=env, text=True, capture_output=capture, timeout=timeout
    )


def repo_process_environment(
    repo: Path, environment: Path, extra_env: dict[str, str] | None = None
) -> dict[str, str]:
    """The process environment :func:`run_in_repo` gives a command (for a long-running
    process started some other way): ``environment`` active, ``repo/src`` importable."""
    env = dict(os.environ)
    env["VIRTUAL_ENV"] = str(environment)
    env["PATH"] = os.pathsep.join([str(environment / "bin"), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(repo / "src"), env.get("PYTHONPATH", "")])
    )
    env.pop("PYTHONHOME", None)
    env.update(extra_env or {})
    return env


REPO_PYTHON_ENV = "MLGEN_REPO_PYTHON"


def repo_environment(repo: Path) -> Path:
    """The environment that runs a generated repository's own code.

    ``$MLGEN_REPO_PYTHON`` (an interpreter) wins, then the repository's ``.venv``, then
    the shared environment for its declared dependencies (built with uv on first use).
    The plugins' ``mlgen_prepare_environment`` hook has run on it.
    """
    configured = os.environ.get(REPO_PYTHON_ENV)
    local = repo / ".venv"
    if configured:
        environment = Path(configured).absolute().parent.parent
    elif python_in(local).is_file():
        environment = local
    else:
        return shared_environment(repo)  # prepared there
    prepare_environment(environment, repo)
    return environment
