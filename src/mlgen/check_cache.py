"""Passed check results, reused while the files a check reads do not change.

A result is stored under a key that hashes the check's name, the code that implements
it, mlgen's version and the path and content of every file its ``inputs`` match
(:attr:`mlgen.Check.inputs`). Only passed results are stored: a failure (a missing
tool, a timeout, a real finding) always runs again. The cache lives in
``$MLGEN_CHECK_CACHE``, else ``$XDG_CACHE_HOME/mlgen/checks`` (``~/.cache/mlgen/checks``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import sys
import threading
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import mlgen
from mlgen.checks import Check, CheckResult
from mlgen.template import ANSWERS_FILE

CACHE_ENV = "MLGEN_CHECK_CACHE"
IGNORED_DIRS = frozenset(
    {".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis"}
)
"""Folders never read as inputs: version control, the local environment and caches that
running a repository's code or tools writes (they would make every run look changed)."""
_TIMINGS = "timings.json"


def cache_dir() -> Path:
    """Where check results are kept."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlgen" / "checks"


class RepoFiles:
    """The files of a repository, listed once and hashed at most once each."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self._digests: dict[str, str] = {}
        self._lock = threading.Lock()
        self.paths = sorted(self._walk())

    def _walk(self) -> Iterable[str]:
        for folder, dirs, files in os.walk(self.repo):
            dirs[:] = [name for name in dirs if name not in IGNORED_DIRS]
            relative = Path(folder).relative_to(self.repo)
            for name in files:
                if not name.endswith((".pyc", ".pyo")):
                    yield (relative / name).as_posix()

    def matching(self, patterns: tuple[str, ...]) -> list[str]:
        """The files ``patterns`` name (every file for ``()``); see :attr:`Check.inputs`."""
        if not patterns:
            return list(self.paths)
        return [path for path in self.paths if any(_matches(path, p) for p in patterns)]

    def digest(self, path: str) -> str:
        """The SHA-256 of one file's content."""
        with self._lock:
            known = self._digests.get(path)
        if known is None:
            hasher = hashlib.sha256()
            with (self.repo / path).open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    hasher.update(block)
            known = hasher.hexdigest()
            with self._lock:
                self._digests[path] = known
        return known


def _matches(path: str, pattern: str) -> bool:
    if pattern.endswith("/"):
        return path.startswith(pattern)
    return path == pattern or fnmatch.fnmatchcase(path, pattern)


@cache
def _source_digest(module_name: str) -> str:
    module = sys.modules.get(module_name)
    source = getattr(module, "__file__", None)
    if not source or not Path(source).is_file():
        return module_name
    return hashlib.sha256(Path(source).read_bytes()).hexdigest()


def check_key(check: Check, files: RepoFiles) -> str:
    """The cache key of ``check`` on the repository ``files`` lists."""
    hasher = hashlib.sha256()
    module = getattr(check.run, "__module__", None) or ""
    # The interpreter that runs the repository's code is part of what such checks read.
    from mlgen.environments import REPO_PYTHON_ENV

    for part in (
        check.name,
        mlgen.__version__,
        module,
        _source_digest(module),
        os.environ.get(REPO_PYTHON_ENV, ""),
        *check.requires,
    ):
        hasher.update(part.encode() + b"\0")
    inputs = check.inputs
    if inputs and check.takes_answers:
        inputs = (*inputs, ANSWERS_FILE)
    for path in files.matching(inputs):
        hasher.update(path.encode() + b"\0" + files.digest(path).encode() + b"\0")
    return hasher.hexdigest()


class CheckCache:
    """Passed results on disk, one small JSON file per key, and each check's last time."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or cache_dir()
        self._lock = threading.Lock()

    def get(self, key: str) -> CheckResult | None:
        """The stored result for ``key``, or None."""
        try:
            stored = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return CheckResult(True, str(stored.get("detail", "")))

    def put(self, key: str, result: CheckResult) -> None:
        """Store a passed result (failures are never stored)."""
        if result.ok:
            self._write(self._path(key), {"detail": result.detail})

    def last_seconds(self) -> dict[str, float]:
        """How long each check took the last time it ran (for scheduling)."""
        try:
            loaded = json.loads((self.root / _TIMINGS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): float(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}

    def record_seconds(self, seconds: dict[str, float]) -> None:
        """Remember how long the checks that ran took."""
        with self._lock:
            self._write(self.root / _TIMINGS, {**self.last_seconds(), **seconds})

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def _write(self, path: Path, data: object) -> None:
        # Write then rename: a concurrent reader sees the old file or the new one.
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        scratch.write_text(json.dumps(data), encoding="utf-8")
        os.replace(scratch, path)
