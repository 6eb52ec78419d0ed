"""Slow tier: every backend's generated repository passes its own test suite.

(The smoke test, serving a real prediction, is part of the contract suite.) The
production profile's ``integration`` tests (real PostgreSQL and Redis, started by the
tests) run for the fastapi backend; the other backends share that code and are covered by
the render matrix and the validators.
"""

from __future__ import annotations

import re

import pytest

from mlgen.environments import run_in_repo
from tests.conftest import BuiltRepos
from tests.rendering import slow_tier_backends

pytestmark = pytest.mark.slow
INTEGRATION_BACKEND = "fastapi"


@pytest.mark.parametrize("backend", slow_tier_backends())
def test_generated_repo_passes_its_own_test_suite(built_repos: BuiltRepos, backend: str) -> None:
    repo, environment = built_repos.get(backend)
    select = [] if backend == INTEGRATION_BACKEND else ["-m", "not integration"]
    result = run_in_repo(
        repo, environment, ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *select]
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 10, summary
    assert "failed" not in summary and "error" not in summary, summary
