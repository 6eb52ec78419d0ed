"""The generated Dependabot configuration is valid and covers pip and GitHub Actions."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.conftest import BIN, REPO_ROOT
from tests.rendering import render


def test_dependabot_config_is_valid_for_both_ecosystems(tmp_path: Path) -> None:
    repo = render(REPO_ROOT, tmp_path / "repo", serving_backend="fastapi")
    config = repo / ".github" / "dependabot.yml"
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(config)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ecosystems = {u["package-ecosystem"] for u in yaml.safe_load(config.read_text())["updates"]}
    assert ecosystems == {"pip", "github-actions"}


def test_a_broken_dependabot_config_is_caught(tmp_path: Path) -> None:
    broken = tmp_path / "dependabot.yml"
    broken.write_text("version: 2\nupdates:\n  - package-ecosystem: pipp\n    directory: /\n")
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(broken)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "'pipp' is not one of" in result.stdout
