"""A pytest plugin for a repository's suite: real PostgreSQL and Redis on loopback.

Load it from the repository's ``tests/conftest.py``::

    pytest_plugins = ["mlgen_runtime.testing.fixtures"]

Both fixtures are session-scoped: one server each for the whole run, started on a free
port with its own data folder and stopped afterwards (:mod:`mlgen_runtime.servers`; the
``production`` extra and the servers' binaries are needed only when a test asks for them).
With ``MLGEN_TEST_POSTGRES_URL`` / ``MLGEN_TEST_REDIS_URL`` set (CI's service containers)
they use those servers instead, as :func:`mlgen_runtime.servers.postgres` does.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlgen_runtime import servers

__all__ = ["postgres", "redis"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[servers.Postgres]:
    """A real PostgreSQL on loopback (own data folder, free port), for the session."""
    with servers.postgres() as server:
        yield server


@pytest.fixture(scope="session")
def redis() -> Iterator[servers.Redis]:
    """A real Redis on loopback (free port, password), for the session."""
    with servers.redis() as server:
        yield server
