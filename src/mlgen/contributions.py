"""Files that plugins contribute to a generated repository."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

TEMPLATE_SUFFIX = ".jinja"


@dataclass(frozen=True)
class FileContribution:
    """One file a plugin adds to the generated repository.

    Attributes:
        path: its path in the repository, relative, with ``/`` separators. It is rendered
            with Jinja, so ``src/{{ package_name }}/app.py`` works.
        source: the file's Jinja template text; it sees every copier answer.
        origin: who contributed it (filled in by mlgen: ``plugin 'x' (dist 1.0)``).
    """

    path: str
    source: str
    origin: str = ""


def walk_files(node: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    """Every file below ``node`` as ``(relative path, resource)``, sorted, caches skipped."""
    found: list[tuple[str, Traversable]] = []
    for child in sorted(node.iterdir(), key=lambda item: item.name):
        if child.name == "__pycache__" or child.name.endswith((".pyc", ".pyo")):
            continue
        relative = f"{prefix}{child.name}"
        if child.is_dir():
            found.extend(walk_files(child, relative + "/"))
        else:
            found.append((relative, child))
    return found


def contributions_from_package(package: str, directory: str, origin: str) -> list[FileContribution]:
    """Read every file below ``directory`` of an importable ``package`` as a contribution.

    A ``.jinja`` suffix is dropped from the path; every file is rendered with Jinja.
    """
    root = resources.files(package).joinpath(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"{origin}: templates folder {package}/{directory} does not exist")
    contributions = []
    for relative, node in walk_files(root):
        path = relative.removesuffix(TEMPLATE_SUFFIX)
        contributions.append(FileContribution(path, node.read_text(encoding="utf-8"), origin))
    return contributions
