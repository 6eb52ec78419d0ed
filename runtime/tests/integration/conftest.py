"""One real PostgreSQL and one real Redis for the whole integration session
(:mod:`mlgen_runtime.servers`): tests of the production profile take a fresh database
(or Redis database number) each, so they stay independent without a server per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from mlgen_runtime import servers

_NAMES = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[servers.Postgres]:
    with servers.postgres() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[servers.Redis]:
    with servers.redis() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: servers.Postgres) -> str:
    """A SQLAlchemy URL of a new, empty database on the session's PostgreSQL."""
    return postgres_server.url(postgres_server.create_database(f"test_{next(_NAMES)}"))
