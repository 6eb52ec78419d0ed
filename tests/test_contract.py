"""The backend contract suite (mlgen.testing) over every installed backend."""

from __future__ import annotations

import pytest

from mlgen.testing import BackendContract
from tests.rendering import slow_tier_backends

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session", params=slow_tier_backends())
def contract_backend(request: pytest.FixtureRequest) -> str:
    """Each installed backend in turn, built-in or third-party."""
    return str(request.param)


class TestBackendContract(BackendContract):
    """The same suite a third-party plugin author runs."""
