"""Slow tier: every backend's generated repository passes its own suite and smoke test."""

from __future__ import annotations

import re

import pytest

from mlgen.environments import run_in_repo
from mlgen.plugins import get_registry
from tests.conftest import BuiltRepos
from tests.rendering import installed_backends, recorded_answers

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", installed_backends())
def test_generated_repo_passes_its_own_test_suite(built_repos: BuiltRepos, backend: str) -> None:
    repo, environment = built_repos.get(backend)
    result = run_in_repo(
        repo, environment, ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 10, summary
    assert "failed" not in summary and "error" not in summary, summary


@pytest.mark.parametrize("backend", installed_backends())
def test_backend_smoke_test_serves_a_prediction(built_repos: BuiltRepos, backend: str) -> None:
    repo, environment = built_repos.get(backend)
    package = str(recorded_answers(repo)["package_name"])
    command = get_registry().get_backend(backend).backend.smoke_command(package)
    result = run_in_repo(repo, environment, command, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
