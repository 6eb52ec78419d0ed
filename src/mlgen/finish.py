"""``python -m mlgen.finish [DIR]``: the copier task run after every generation.

The template's Python files are written ruff-formatted for the default names; a longer
package or model name moves lines past the line length. So the generated tree is first
brought to the repository's own ruff settings (imports sorted, then ``ruff format``: the
layout its CI checks with ``ruff check`` and ``ruff format --check``), then recorded as
the exact base of later updates (:mod:`mlgen.record`). Both steps are deterministic, so a
re-render of the same template and answers gives the same bytes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ruff.__main__ import find_ruff_bin

from mlgen.record import write_record


def format_python(root: Path) -> None:
    """Sort imports and format every Python file below ``root`` with its ruff settings;
    nothing when the tree has no ``[tool.ruff]`` in its ``pyproject.toml`` (ruff's own
    defaults are not the layout the template was written in)."""
    pyproject = root / "pyproject.toml"
    if not (pyproject.is_file() and "[tool.ruff" in pyproject.read_text(encoding="utf-8")):
        return
    ruff = find_ruff_bin()
    for command in (["check", "--fix-only", "--select", "I"], ["format"]):
        subprocess.run(
            [ruff, *command, "--quiet", "--no-cache", "."], cwd=root, check=False, timeout=120
        )


def main(argv: list[str] | None = None) -> int:
    """Format, then record the generated tree in ``DIR`` (default: the current folder)."""
    arguments = sys.argv[1:] if argv is None else argv
    root = Path(arguments[0] if arguments else ".")
    format_python(root)
    write_record(root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
