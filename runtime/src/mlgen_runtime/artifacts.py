"""How an exported model is identified, and how training records are written (standard library).

* :func:`sha256_of`: the SHA-256 of a file, or of a directory tree (a SavedModel);
* :func:`model_version`: the short, content-derived version every backend reports,
  ``sha256-<12 hex>`` (the serving app's default ``model_version``);
* :func:`write_json`: a JSON record (``metrics.json``) written atomically;
* :func:`repo_root`: a repository's root when its package runs from the source tree.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def sha256_of(path: Path) -> str:
    """The SHA-256 hex digest of a file's bytes, or of a directory tree.

    A directory is digested as the sorted list of its files' relative POSIX paths and
    their own digests, so the result depends on names and contents only, not on
    timestamps or traversal order.
    """
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(path).as_posix()}\0{sha256_of(file)}\n".encode())
        return digest.hexdigest()
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def model_version(path: Path) -> str:
    """A short, content-derived version of an exported model: ``sha256-<12 hex>``."""
    return f"sha256-{sha256_of(path)[:12]}"


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented, key-sorted JSON, atomically (readers never see half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)


def repo_root(module_file: str | Path) -> Path | None:
    """The repository root of a package module in ``<root>/src/<package>/`` next to
    ``<root>/pyproject.toml`` (pass the module's ``__file__``); ``None`` for an installed,
    non-editable copy, which has no repository root."""
    package_dir = Path(module_file).resolve().parent
    root = package_dir.parent.parent
    if package_dir.parent.name == "src" and (root / "pyproject.toml").is_file():
        return root
    return None
