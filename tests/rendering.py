"""One helper to render the template, and one to read a rendered tree, for all tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import copier
import yaml

from mlgen.plugins import get_registry
from mlgen.record import RECORD_FILE, decode_record, encode_record

ANSWERS_FILE = ".copier-answers.yml"
COPIER_RECORDED = ("_src_path", "_commit")  # what copier records about where it rendered from


def installed_backends() -> list[str]:
    """Every backend installed in this environment: the matrix the suite runs over."""
    return get_registry().backend_names()


def slow_tier_backends() -> list[str]:
    """One backend per distinct runtime: backends that differ only in their container
    resources (``triton`` and ``triton-gpu``) share files and environment, so the slow
    tier (environment, own suite, contract) runs the first of them; the fast tier and the
    artifact validators still cover every backend."""
    seen: dict[tuple[object, ...], str] = {}
    registry = get_registry()
    for name in registry.backend_names():
        backend = registry.backends[name].backend
        key = (
            backend.templates_package,
            backend.templates_dir,
            backend.dependencies,
            backend.dev_dependencies,
            backend.export_format,
        )
        seen.setdefault(key, name)
    return sorted(seen.values())


def render(template: Path, destination: Path, **answers: Any) -> Path:
    """Render ``template`` into ``destination`` with copier's API, like ``copier copy``."""
    copier.run_copy(
        str(template), destination, answers, defaults=True, unsafe=True, quiet=True, vcs_ref="HEAD"
    )
    return destination


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` by relative path; copier's provenance lines removed."""
    tree: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(root).as_posix()
        content = path.read_bytes()
        if relative == ANSWERS_FILE:
            content = _without_provenance(content)
        elif relative == RECORD_FILE:  # the generation record holds the answers file too
            recorded = decode_record(content) or {}
            if ANSWERS_FILE in recorded:
                recorded[ANSWERS_FILE] = _without_provenance(recorded[ANSWERS_FILE])
            content = encode_record(recorded)
        tree[relative] = content
    return tree


def _without_provenance(answers: bytes) -> bytes:
    lines = answers.decode().splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith(COPIER_RECORDED)).encode()


def recorded_answers(root: Path) -> dict[str, Any]:
    """The answers copier recorded in a rendered repository."""
    loaded = yaml.safe_load((root / ANSWERS_FILE).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded
