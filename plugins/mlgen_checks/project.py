"""Checks of the repository's Python project: metadata and code that parses."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlgen import Check, CheckResult


def _pyproject(repo: Path) -> CheckResult:
    try:
        project = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as error:
        return CheckResult(False, f"pyproject.toml: {type(error).__name__}: {error}")
    missing = [key for key in ("name", "version", "dependencies") if key not in project]
    if missing:
        return CheckResult(False, f"pyproject.toml [project] lacks {', '.join(missing)}")
    return CheckResult(
        True, f"{project['name']} {project['version']}, {len(project['dependencies'])} dependencies"
    )


def _python_syntax(repo: Path) -> CheckResult:
    files = [
        path
        for path in repo.rglob("*.py")
        if not any(part.startswith(".") for part in path.relative_to(repo).parts)
    ]
    for path in files:
        try:
            ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except SyntaxError as error:
            return CheckResult(False, f"{path.relative_to(repo)}:{error.lineno}: {error.msg}")
    return CheckResult(True, f"{len(files)} Python files parse")


def checks(repo: Path, answers: Mapping[str, Any]) -> list[Check]:
    """The project checks."""
    return [
        Check(
            "pyproject",
            _pyproject,
            inputs=("pyproject.toml",),
            description="pyproject.toml has a [project] with name, version and dependencies.",
        ),
        Check(
            "python-syntax",
            _python_syntax,
            inputs=("*.py",),
            description="Every Python file parses.",
        ),
    ]
