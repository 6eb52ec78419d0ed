"""mlgen_runtime.servers: real PostgreSQL and Redis from Debian's packages, each in its
own data folder on a free loopback port, with password authentication, always stopped."""

from __future__ import annotations

import subprocess

import pytest

from mlgen_runtime import servers


def redis_cli(server: servers.Redis, *args: str, password: str | None = None) -> str:
    command = ["redis-cli", "-h", server.host, "-p", str(server.port), "--no-auth-warning"]
    command += ["-a", server.password if password is None else password, *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def test_postgres_runs_with_password_authentication_and_stops() -> None:
    with servers.postgres() as pg:
        name = pg.create_database("probe")
        assert pg.psql("SELECT current_database()", name).strip() == "probe"
        wrong = servers.Postgres(pg.host, pg.port, pg.user, "not-the-password")
        with pytest.raises(subprocess.CalledProcessError) as refused:
            wrong.psql("SELECT 1")
        assert "password authentication failed" in refused.value.stderr
    with pytest.raises(subprocess.CalledProcessError):
        pg.psql("SELECT 1")  # stopped


def test_redis_runs_with_a_password_and_stops() -> None:
    with servers.redis() as cache:
        assert redis_cli(cache, "SET", "k", "v") == "OK"
        assert redis_cli(cache, "GET", "k") == "v"
        refused = redis_cli(cache, "GET", "k", password="wrong")
        assert refused.startswith(("NOAUTH", "WRONGPASS")), refused
        assert cache.connection_string == f"127.0.0.1:{cache.port},password={cache.password}"
    with pytest.raises(subprocess.CalledProcessError):
        redis_cli(cache, "PING")


def test_servers_that_already_run_are_used_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    with servers.postgres() as pg, servers.redis() as cache:
        monkeypatch.setenv(
            "MLGEN_TEST_POSTGRES_URL", f"postgresql://{pg.user}:{pg.password}@{pg.host}:{pg.port}"
        )
        monkeypatch.setenv("MLGEN_TEST_REDIS_URL", cache.url)
        with servers.postgres() as same, servers.redis() as same_cache:
            assert same == pg and same_cache == cache
            assert same.create_database("external") == "external"
        assert pg.psql("SELECT 1").strip() == "1"  # still running: nothing was stopped
