"""mlgen's backend contract suite, run against this plugin's backend."""

from __future__ import annotations

import pytest
from mlgen.testing import BackendContract

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def contract_backend() -> str:
    """The backend under test: the name this plugin registers."""
    return "kserve"


class TestContract(BackendContract):
    """Renders a repository with the backend and checks what every backend must do."""
