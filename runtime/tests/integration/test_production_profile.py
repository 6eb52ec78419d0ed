"""The production profile against real servers: Feast's SQL registry on PostgreSQL and
its Redis online store, chosen by ``MLGEN_PROFILE`` only; and every way a setting can be
wrong (a bad URL, a refused connection, refused credentials) gives one line that names
the setting, before anything is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import driver_repo, write_drivers

from mlgen_runtime import feature_store, profile, servers
from mlgen_runtime.process import free_port

PRODUCTION_CONFIG = """\
project: runtime_test
provider: local
registry:
  registry_type: sql
  path: ${FEAST_REGISTRY_URL}
  cache_ttl_seconds: 60
online_store:
  type: redis
  connection_string: ${FEAST_REDIS_CONNECTION_STRING}
offline_store:
  type: file
entity_key_serialization_version: 3
"""


@pytest.fixture
def production(
    monkeypatch: pytest.MonkeyPatch,
    postgres_url: str,
    redis: servers.Redis,
    tmp_path: Path,
) -> dict[str, str]:
    """The production profile's variables, pointing at the session's real servers."""
    environ = {
        profile.PROFILE_ENV: profile.PRODUCTION,
        profile.TRACKING_ENV: postgres_url,
        profile.ARTIFACTS_ENV: (tmp_path / "mlartifacts").as_uri(),
        profile.REGISTRY_ENV: postgres_url,
        profile.REDIS_ENV: redis.connection_string,
    }
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    return environ


def test_feast_applies_to_postgres_and_serves_online_features_from_redis(
    production: dict[str, str], tmp_path: Path
) -> None:
    repo = driver_repo(tmp_path / "feature_repo", "project: never_read\n", PRODUCTION_CONFIG)
    now = datetime.now(UTC).replace(microsecond=0)
    write_drivers(repo, [1, 1, 2], [now - timedelta(days=2), now - timedelta(days=1), now])

    assert profile.check() is not None
    applied = feature_store.apply(repo)
    assert type(applied.registry).__name__ == "SqlRegistry"
    feature_store.materialize(applied, now + timedelta(seconds=1))

    fresh = feature_store.store(repo)  # a new client: the state is in the servers
    assert [view.name for view in fresh.list_feature_views()] == ["driver_stats"]
    online = feature_store.online_features(fresh, ["driver_stats:speed"], "driver_id", [1, 2, 9])
    assert online["speed"][:2] == pytest.approx([20.0, 30.0]) and online["speed"][2] is None
    assert type(fresh._get_provider().online_store).__name__ == "RedisOnlineStore"


def test_local_is_the_default_and_unknown_profiles_are_refused(tmp_path: Path) -> None:
    assert profile.name({}) == profile.LOCAL
    assert profile.check({}) is None  # nothing to connect to
    assert profile.feature_store_yaml(tmp_path, {}) == tmp_path / "feature_store.yaml"
    with pytest.raises(profile.ProfileError, match="MLGEN_PROFILE='prod' is not a profile"):
        profile.name({"MLGEN_PROFILE": "prod"})


def _refused(environ: dict[str, str], **changes: str) -> str:
    with pytest.raises(profile.ProfileError) as raised:
        profile.check({**environ, **changes})
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_a_missing_setting_names_it(production: dict[str, str]) -> None:
    message = _refused(production, FEAST_REDIS_CONNECTION_STRING="")
    assert message.startswith("FEAST_REDIS_CONNECTION_STRING is not set")
    message = _refused(production, MLGEN_ARTIFACT_LOCATION="")
    assert message.startswith("MLGEN_ARTIFACT_LOCATION is not set")


def test_a_wrong_url_names_the_setting_and_the_form(production: dict[str, str]) -> None:
    message = _refused(production, MLFLOW_TRACKING_URI="sqlite:///mlflow.db")
    assert message.startswith("MLFLOW_TRACKING_URI must name PostgreSQL")
    message = _refused(production, FEAST_REGISTRY_URL="postgresql+nodriver://u:p@h/db")
    assert message.startswith("FEAST_REGISTRY_URL is not a database URL")
    assert "postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE" in message
    message = _refused(production, FEAST_REDIS_CONNECTION_STRING="redis://h:notaport")
    assert message.startswith("FEAST_REDIS_CONNECTION_STRING is not a Redis connection string")


def test_a_refused_connection_names_the_setting(production: dict[str, str]) -> None:
    port = free_port()  # nothing listens there
    down = f"postgresql+psycopg://mlgen:x@127.0.0.1:{port}/mlflow"
    message = _refused(production, MLFLOW_TRACKING_URI=down)
    assert message == (
        f"MLFLOW_TRACKING_URI: no PostgreSQL answers at 127.0.0.1:{port} (connection "
        "refused): start the server or fix the host and port in the URL"
    )
    message = _refused(production, FEAST_REDIS_CONNECTION_STRING=f"127.0.0.1:{port}")
    assert "start it or fix the host and port" in message
    assert message.startswith(
        f"FEAST_REDIS_CONNECTION_STRING: no Redis answers at 127.0.0.1:{port}"
    )


def test_bad_credentials_name_the_setting(
    production: dict[str, str], postgres: servers.Postgres, redis: servers.Redis
) -> None:
    wrong = servers.Postgres(postgres.host, postgres.port, "mlgen", "wrong")
    message = _refused(production, FEAST_REGISTRY_URL=wrong.url("postgres"))
    assert message.startswith("FEAST_REGISTRY_URL: PostgreSQL at 127.0.0.1:")
    assert "refused the credentials of user 'mlgen'" in message
    message = _refused(production, MLFLOW_TRACKING_URI=postgres.url("missing"))
    assert "has no database 'missing'" in message
    where = f"{redis.host}:{redis.port}"
    message = _refused(production, FEAST_REDIS_CONNECTION_STRING=f"{where},password=wrong")
    assert message.startswith(f"FEAST_REDIS_CONNECTION_STRING: Redis at {where} refused")
    message = _refused(production, FEAST_REDIS_CONNECTION_STRING=where)
    assert message.startswith(f"FEAST_REDIS_CONNECTION_STRING: Redis at {where} needs a password")
