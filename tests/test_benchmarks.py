"""The benchmark scripts themselves run and write their results (tiny sizes, ``--quick``).

Benchmarks are not timed tests: nothing here looks at a figure or a target, only at
whether each benchmark ran and wrote a well-formed ``<name>.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

BENCHMARKS = ["generation", "update", "fleet", "drift", "check", "production"]

pytestmark = pytest.mark.slow


def test_benchmarks_run_in_quick_mode(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "benchmarks" / "run_all.py"),
            "--quick",
            "--results-dir",
            str(tmp_path),
            "--only",
            *BENCHMARKS,
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "===== summary" in result.stdout
    for name in BENCHMARKS:
        data = json.loads((tmp_path / f"{name}.json").read_text())
        assert data["benchmark"] == name and data["quick"] is True
        assert data["environment"]["load_average_at_start"]
        assert data["comparisons"], name
        for row in data["comparisons"]:
            assert row["figure"] and row["baseline"] and row["target"], row
            assert row["ratio"] > 0 and isinstance(row["met"], bool), row
        for measured in data["measurements"].values():
            assert measured["runs"] and measured["median"] >= 0
