"""Three-way merge of one file, with git's own merge machinery (``git merge-file``)."""

from __future__ import annotations

import difflib
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MergeResult:
    """The merged bytes and how many conflicting hunks they contain (with markers)."""

    content: bytes
    conflicts: int


def merge_three_way(
    current: bytes,
    base: bytes,
    new: bytes,
    *,
    labels: tuple[str, str, str] = ("local", "last generated", "upstream"),
) -> MergeResult:
    """Merge the change ``base -> new`` into ``current``, like ``git merge-file``.

    Non-overlapping edits combine; overlapping ones are left between standard
    conflict markers (``<<<<<<<``, ``|||||||``, ``=======``, ``>>>>>>>``).
    """
    with tempfile.TemporaryDirectory(prefix="mlgen-merge-") as scratch:
        folder = Path(scratch)
        paths = []
        for name, content in (("current", current), ("base", base), ("new", new)):
            path = folder / name
            path.write_bytes(content)
            paths.append(str(path))
        result = subprocess.run(
            [
                "git",
                "merge-file",
                "-p",
                "--diff3",
                "-L",
                labels[0],
                "-L",
                labels[1],
                "-L",
                labels[2],
                *paths,
            ],
            capture_output=True,
        )
    if result.returncode < 0 or result.returncode > 127:
        raise RuntimeError(f"git merge-file failed: {result.stderr.decode(errors='replace')}")
    return MergeResult(result.stdout, result.returncode)


def unified_diff(path: str, base: bytes, new: bytes) -> bytes:
    """The upstream change of one file as a unified diff (the body of a ``.rej`` file)."""
    lines = difflib.unified_diff(
        base.decode(errors="replace").splitlines(keepends=True),
        new.decode(errors="replace").splitlines(keepends=True),
        fromfile=f"a/{path}",
        tofile=f"b/{path}",
    )
    return "".join(lines).encode()


def is_text(content: bytes) -> bool:
    """True for UTF-8 text without NUL bytes (what a line merge can handle)."""
    if b"\0" in content:
        return False
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
