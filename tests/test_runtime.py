"""The runtime library's integration suite, in an environment with all of its extras.

Its light tests (``runtime/tests``) run in mlgen's own environment with the fast tier;
the ones that need MLflow, Feast or ONNX Runtime run here, in a shared environment built
once from ``runtime/pyproject.toml`` (the runtime itself comes from ``src`` on the path).
"""

from __future__ import annotations

import pytest

from mlgen.environments import run_in_repo, shared_environment
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

RUNTIME = REPO_ROOT / "runtime"
EXTRAS = ("serving", "onnx", "stats", "registry", "feast", "production", "triton", "test")


def test_runtime_integration_suite() -> None:
    environment = shared_environment(RUNTIME, extras=EXTRAS)
    result = run_in_repo(
        RUNTIME,
        environment,
        ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        extra_env={"MLGEN_RUNTIME_INTEGRATION": "1", "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
