"""Bring Python files to the generated code's ruff formatting before a three-way merge.

Repositories generated before the template shipped ruff-formatted code hold files in an
older layout (``Pipeline([`` hugging its list, say). Their new version is the same code
reformatted, so a local edit inside such a block overlaps the reformatting and would be a
conflict although nothing but whitespace moved upstream. Formatting the last generated
version and the local one the way the template formats its code first leaves only the
real changes to merge.
"""

from __future__ import annotations

import subprocess

from ruff.__main__ import find_ruff_bin

# The generated repository's [tool.ruff] settings that decide the layout.
LINE_LENGTH = 100


def ruff_formatted(content: bytes, path: str) -> bytes | None:
    """``content`` as ``ruff format`` writes it, or ``None`` if ruff cannot parse it."""
    result = subprocess.run(
        [
            find_ruff_bin(),
            "format",
            "--isolated",
            "--line-length",
            str(LINE_LENGTH),
            "--stdin-filename",
            path,
            "-",
        ],
        input=content,
        capture_output=True,
    )
    return result.stdout if result.returncode == 0 else None


def formatted_sides(path: str, current: bytes, base: bytes, new: bytes) -> tuple[bytes, bytes]:
    """The local and last generated versions in the new version's formatting.

    Only when the new version is itself ruff-formatted (the template ships it so) and
    both other sides parse; otherwise they come back unchanged.
    """
    if not path.endswith(".py") or ruff_formatted(new, path) != new:
        return current, base
    formatted_current, formatted_base = ruff_formatted(current, path), ruff_formatted(base, path)
    if formatted_current is None or formatted_base is None:
        return current, base
    return formatted_current, formatted_base
