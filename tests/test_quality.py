"""The code base stays ruff- and mypy-clean: part of the suite so CI enforces it."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import BIN, REPO_ROOT


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "--no-cache", "src", "plugins", "tests", "runtime"],
        ["ruff", "format", "--check", "--no-cache", "src", "plugins", "tests", "runtime"],
        ["mypy", "--no-incremental"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_code_quality(command: list[str]) -> None:
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
