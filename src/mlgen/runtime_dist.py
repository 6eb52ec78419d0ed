"""Where generated repositories get ``mlgen-runtime`` from when it is not on an index.

A platform team publishes ``mlgen-runtime`` to the package index its repositories use
(docs/runtime.md). Inside this checkout (tests, ``mlgen demo``, ``mlgen check``) it is
built once into a wheel from ``runtime/`` and handed to uv with ``--find-links``: the
repository declares the same pin either way and never carries a copy of the library.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import mlgen
from mlgen.errors import MlgenError

SOURCE_ENV = "MLGEN_RUNTIME_SOURCE"
"""A folder holding the runtime's ``pyproject.toml`` (overrides the checkout's)."""
FIND_LINKS_ENV = "MLGEN_RUNTIME_FIND_LINKS"
"""A folder or URL with ``mlgen-runtime`` wheels, passed to uv as ``--find-links``."""
DISTRIBUTION = "mlgen-runtime"
_VERSION = re.compile(r'^__version__ = "([^"]+)"', re.MULTILINE)


def runtime_source() -> Path | None:
    """The runtime's source folder: ``$MLGEN_RUNTIME_SOURCE`` or the checkout's ``runtime/``.

    ``None`` for an installed mlgen (a wheel), whose repositories take the runtime from
    their package index.
    """
    configured = os.environ.get(SOURCE_ENV)
    if configured:
        return Path(configured)
    candidate = Path(mlgen.__file__).resolve().parents[2] / "runtime"
    return candidate if (candidate / "pyproject.toml").is_file() else None


def source_version(source: Path) -> str:
    """The version declared in a runtime source folder."""
    init = source / "src" / "mlgen_runtime" / "__init__.py"
    match = _VERSION.search(init.read_text(encoding="utf-8"))
    if match is None:
        raise MlgenError(f"{init} declares no __version__")
    return match.group(1)


def source_digest(source: Path) -> str:
    """A hash of everything that goes into the runtime's wheel."""
    digest = hashlib.sha256()
    files = [source / "pyproject.toml", source / "README.md"]
    files += sorted(p for p in (source / "src").rglob("*") if p.is_file() and _shipped(p))
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(source)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def metadata_digest(source: Path) -> str:
    """A hash of the runtime's declared dependencies (an environment key part)."""
    return hashlib.sha256((source / "pyproject.toml").read_bytes()).hexdigest()[:16]


def _shipped(path: Path) -> bool:
    return "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo")


@cache
def _wheel_for(source: Path, digest: str, root: Path) -> Path:
    target = root / digest
    with (root / f"{digest}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not any(target.glob("*.whl")):
            scratch = root / f"{digest}.partial"
            shutil.rmtree(scratch, ignore_errors=True)
            command = [_uv(), "build", "--wheel", "--quiet", "--out-dir", str(scratch)]
            result = subprocess.run(
                [*command, str(source)], capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
                raise MlgenError(f"building {DISTRIBUTION} from {source} failed: {tail}")
            shutil.rmtree(target, ignore_errors=True)
            scratch.rename(target)
    return next(target.glob("*.whl"))


def local_wheel(cache_dir: Path) -> Path | None:
    """The runtime wheel built from :func:`runtime_source` (built on first use), or None."""
    source = runtime_source()
    if source is None:
        return None
    root = cache_dir / "runtime-wheels"
    root.mkdir(parents=True, exist_ok=True)
    return _wheel_for(source.resolve(), source_digest(source), root)


def linked_wheel() -> Path | None:
    """The newest ``mlgen-runtime`` wheel in ``$MLGEN_RUNTIME_FIND_LINKS`` when that is a
    local folder (an installed mlgen's tests and CI hand the runtime over this way), else
    ``None``. Its folder and name identify what an environment holds: a rebuilt wheel of
    the same version is reinstalled, not taken for the one already installed."""
    configured = os.environ.get(FIND_LINKS_ENV)
    if not configured or not Path(configured).is_dir():
        return None
    wheels = sorted(Path(configured).glob("mlgen_runtime-*.whl"), key=lambda p: p.stat().st_mtime)
    return wheels[-1] if wheels else None


def find_links(cache_dir: Path) -> list[str]:
    """uv ``--find-links`` arguments that make ``mlgen-runtime`` resolvable here."""
    links: list[str] = []
    configured = os.environ.get(FIND_LINKS_ENV)
    if configured:
        links += ["--find-links", configured]
    wheel = local_wheel(cache_dir)
    if wheel is not None:
        links += ["--find-links", str(wheel.parent)]
    return links


def _uv() -> str:
    from mlgen.environments import uv_binary

    return uv_binary()
