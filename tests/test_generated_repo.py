"""Slow tier: every backend's generated repository passes its own test suite.

(The smoke test, serving a real prediction, is part of the contract suite.) The
production profile's ``integration`` tests (real PostgreSQL and Redis, started by the
tests) run for the fastapi backend; the other backends share that code and are covered by
the render matrix and the validators.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlgen.environments import run_in_repo
from tests.conftest import REPO_ROOT, BuiltRepos
from tests.rendering import slow_tier_backends

pytestmark = pytest.mark.slow
INTEGRATION_BACKEND = "fastapi"
BOOSTED_TREES_RUNTIME_TESTS = "tests/integration/test_export_boosted_trees.py"


BOOSTED_TREES = ("lightgbm", "xgboost")
"""Frameworks whose fastapi repositories share one environment (the ONNX stack plus
LightGBM, XGBoost and onnxmltools); the other frameworks' repositories are the
default ones of their backends (sklearn: fastapi, pytorch: torchserve, tensorflow:
tfserving), run above."""


@pytest.mark.parametrize("backend", slow_tier_backends())
def test_generated_repo_passes_its_own_test_suite(built_repos: BuiltRepos, backend: str) -> None:
    repo, environment = built_repos.get(backend)
    select = [] if backend == INTEGRATION_BACKEND else ["-m", "not integration"]
    _assert_own_suite_passes(repo, environment, select)


@pytest.mark.parametrize("framework", BOOSTED_TREES)
def test_boosted_trees_repo_passes_its_own_test_suite(
    built_repos: BuiltRepos, framework: str
) -> None:
    """A LightGBM or XGBoost model behind fastapi: trains, passes its gate, exports to ONNX
    (onnxmltools' converter, registered by the runtime) and serves what it predicts."""
    repo, environment = built_repos.get("fastapi", framework, share_with=BOOSTED_TREES)
    assert f"{framework}>=" in (repo / "pyproject.toml").read_text()
    _assert_own_suite_passes(repo, environment, ["-m", "not integration"])


def test_runtime_exports_boosted_trees_as_the_libraries_predict(built_repos: BuiltRepos) -> None:
    """The runtime's LightGBM/XGBoost export tests, in the environment that has both."""
    _, environment = built_repos.get("fastapi", BOOSTED_TREES[0], share_with=BOOSTED_TREES)
    result = run_in_repo(
        REPO_ROOT / "runtime",
        environment,
        ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", BOOSTED_TREES_RUNTIME_TESTS],
        extra_env={"MLGEN_RUNTIME_INTEGRATION": "1"},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "skipped" not in result.stdout, result.stdout[-2000:]


def _assert_own_suite_passes(repo: Path, environment: Path, select: list[str]) -> None:
    result = run_in_repo(
        repo, environment, ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *select]
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 10, summary
    assert "failed" not in summary and "error" not in summary, summary
