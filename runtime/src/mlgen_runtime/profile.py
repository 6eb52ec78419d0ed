"""The ``local`` and ``production`` profiles: where MLflow and Feast keep their state.

One code path, chosen by the environment only (never by editing code):

* ``local`` (the default): MLflow on ``$MLFLOW_TRACKING_URI`` or a SQLite file, Feast
  with ``feature_store.yaml`` (file registry, SQLite online store);
* ``production`` (``MLGEN_PROFILE=production``): MLflow on PostgreSQL (or a tracking
  server in front of it) at ``$MLFLOW_TRACKING_URI``, new experiments' artifacts in
  ``$MLGEN_ARTIFACT_LOCATION`` (``s3://``, ``gs://``, a shared folder...); Feast with
  ``feature_store.production.yaml``: a SQL registry at ``$FEAST_REGISTRY_URL`` and a Redis
  online store at ``$FEAST_REDIS_CONNECTION_STRING`` (Feast expands the variables).

Credentials are part of those variables: set them from the environment, a CI secret or
a Kubernetes Secret, never in a committed file. A Secret mounted as files works too:
``$MLGEN_SECRETS_DIR`` names a folder whose files are named like the variables (the
Secret's keys); a variable already set in the environment wins (:func:`secret_files`).

:func:`check` connects to every store the profile uses *before* anything is written and
raises :class:`ProfileError` with one line naming the setting and the fix (a wrong URL, a
refused connection, refused credentials), so a command exits non-zero with nothing
half-registered.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "LOCAL",
    "PRODUCTION",
    "ProfileError",
    "Settings",
    "check",
    "feature_store_yaml",
    "name",
    "secret_files",
    "settings",
]

PROFILE_ENV = "MLGEN_PROFILE"
LOCAL = "local"
PRODUCTION = "production"
PROFILES = (LOCAL, PRODUCTION)
TRACKING_ENV = "MLFLOW_TRACKING_URI"
ARTIFACTS_ENV = "MLGEN_ARTIFACT_LOCATION"
REGISTRY_ENV = "FEAST_REGISTRY_URL"
REDIS_ENV = "FEAST_REDIS_CONNECTION_STRING"
PRODUCTION_YAML = "feature_store.production.yaml"
LOCAL_YAML = "feature_store.yaml"
SECRETS_DIR_ENV = "MLGEN_SECRETS_DIR"
SECRET_VARIABLES = (
    TRACKING_ENV,
    ARTIFACTS_ENV,
    REGISTRY_ENV,
    REDIS_ENV,
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)
"""The variables a mounted Secret may hold as files."""
CONNECT_TIMEOUT_SECONDS = 5
_DATABASE_SCHEMES = ("postgresql", "postgres")
_URL_EXAMPLE = "postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE"


class ProfileError(RuntimeError):
    """A store of the profile is misconfigured or unreachable; the message is one line
    naming the setting and the fix."""


@dataclass(frozen=True)
class Settings:
    """The production profile's settings, read from the environment."""

    tracking_uri: str
    artifact_location: str | None
    registry_url: str
    redis_connection: str


def name(environ: Mapping[str, str] | None = None) -> str:
    """The active profile: ``$MLGEN_PROFILE`` (default ``local``)."""
    value = (environ if environ is not None else os.environ).get(PROFILE_ENV, "").strip()
    if not value:
        return LOCAL
    if value not in PROFILES:
        raise ProfileError(
            f"{PROFILE_ENV}={value!r} is not a profile: set it to {' or '.join(PROFILES)}"
        )
    return value


def secret_files(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Set the :data:`SECRET_VARIABLES` that ``$MLGEN_SECRETS_DIR`` holds as files (a
    Kubernetes Secret mounted as a volume) and that ``environ`` (default: this process's
    environment, where Feast and MLflow read them) does not set yet; return their names."""
    environ = environ if environ is not None else os.environ
    folder = environ.get(SECRETS_DIR_ENV, "").strip()
    if not folder:
        return []
    loaded = []
    for key in SECRET_VARIABLES:
        path = Path(folder) / key
        if not environ.get(key) and path.is_file():
            environ[key] = path.read_text(encoding="utf-8").strip()
            loaded.append(key)
    return loaded


def feature_store_yaml(repo: Path, environ: Mapping[str, str] | None = None) -> Path:
    """The Feast configuration of the active profile in the feature repository ``repo``
    (the Secret's files, :func:`secret_files`, are read first)."""
    if environ is None:
        secret_files()
    return Path(repo) / (PRODUCTION_YAML if name(environ) == PRODUCTION else LOCAL_YAML)


def _required(environ: Mapping[str, str], key: str, what: str) -> str:
    value = environ.get(key, "").strip()
    if not value:
        raise ProfileError(
            f"{key} is not set: the production profile needs {what} "
            "(set it from a secret, e.g. the Kubernetes Secret the jobs mount)"
        )
    return value


def settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The production settings (raises :class:`ProfileError` for a missing one); from
    this process's environment, after :func:`secret_files`, unless ``environ`` is given."""
    if environ is None:
        secret_files()
    environ = environ if environ is not None else os.environ
    tracking = _required(environ, TRACKING_ENV, f"MLflow's store ({_URL_EXAMPLE})")
    scheme = urlsplit(tracking).scheme.split("+")[0]
    if scheme not in (*_DATABASE_SCHEMES, "http", "https"):
        raise ProfileError(
            f"{TRACKING_ENV} must name PostgreSQL ({_URL_EXAMPLE}) or a tracking server "
            f"(https://...) in the production profile, not {scheme or 'a path'}"
        )
    artifacts = environ.get(ARTIFACTS_ENV, "").strip() or None
    if scheme in _DATABASE_SCHEMES and artifacts is None:
        raise ProfileError(
            f"{ARTIFACTS_ENV} is not set: with MLflow on PostgreSQL, name the artifact store "
            "(s3://bucket/prefix, gs://..., or a folder every trainer shares)"
        )
    return Settings(
        tracking_uri=tracking,
        artifact_location=artifacts,
        registry_url=_required(environ, REGISTRY_ENV, f"Feast's SQL registry ({_URL_EXAMPLE})"),
        redis_connection=_required(
            environ, REDIS_ENV, "Feast's Redis online store (HOST:6379,password=...)"
        ),
    )


def check(
    environ: Mapping[str, str] | None = None, *, mlflow: bool = True, feast: bool = True
) -> Settings | None:
    """Connect to every store of the active profile; ``None`` for ``local``.

    Raises:
        ProfileError: a setting is missing or wrong, a server refused the connection or
            the credentials (one line: the setting and the fix).
    """
    if name(environ) == LOCAL:
        return None
    found = settings(environ)
    if mlflow:
        if urlsplit(found.tracking_uri).scheme.startswith("http"):
            check_tracking_server(found.tracking_uri)
        else:
            check_database(TRACKING_ENV, found.tracking_uri)
    if feast:
        check_database(REGISTRY_ENV, found.registry_url)
        check_redis(REDIS_ENV, found.redis_connection)
    return found


def _where(url: Any) -> str:
    return f"{url.host or 'localhost'}:{url.port or 5432}"


def check_database(setting: str, url: str) -> None:
    """Open a connection to the SQL database ``url`` (the value of ``setting``) and run
    ``SELECT 1``; :class:`ProfileError` on failure."""
    import sqlalchemy
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
    from sqlalchemy.pool import NullPool

    try:
        parsed = make_url(url)
        engine = sqlalchemy.create_engine(
            parsed, connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS}, poolclass=NullPool
        )
    except (ArgumentError, NoSuchModuleError, ValueError) as error:
        raise ProfileError(
            f"{setting} is not a database URL SQLAlchemy can use ({_first_line(error)}): "
            f"write it as {_URL_EXAMPLE}"
        ) from None
    if parsed.get_backend_name() not in _DATABASE_SCHEMES:
        raise ProfileError(f"{setting} must name PostgreSQL: write it as {_URL_EXAMPLE}")
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except OperationalError as error:
        raise ProfileError(_database_failure(setting, parsed, str(error.orig))) from None
    finally:
        engine.dispose()


def _database_failure(setting: str, url: Any, message: str) -> str:
    where = _where(url)
    lowered = message.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return (
            f"{setting}: PostgreSQL at {where} refused the credentials of user {url.username!r}: "
            "fix the user and password in the secret that sets it"
        )
    if "does not exist" in lowered and "database" in lowered:
        return (
            f"{setting}: PostgreSQL at {where} has no database {url.database!r}: "
            "create it (CREATE DATABASE) or fix the name in the URL"
        )
    if "could not translate host name" in lowered or "name or service not known" in lowered:
        return f"{setting}: the host {url.host!r} is unknown: fix the host name in the URL"
    if "refused" in lowered or "timeout" in lowered or "timed out" in lowered:
        return (
            f"{setting}: no PostgreSQL answers at {where} (connection refused): start the "
            "server or fix the host and port in the URL"
        )
    return f"{setting}: cannot connect to PostgreSQL at {where}: {_first_line(message)}"


def check_tracking_server(url: str) -> None:
    """``GET <url>/health`` of an MLflow tracking server; :class:`ProfileError` on failure."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url.rstrip('/')}/health", timeout=CONNECT_TIMEOUT_SECONDS):
            return
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            raise ProfileError(
                f"{TRACKING_ENV}: the tracking server refused the credentials (HTTP "
                f"{error.code}): fix MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD"
            ) from None
        raise ProfileError(
            f"{TRACKING_ENV}: {url} answered HTTP {error.code} on /health: "
            "point it at an MLflow tracking server"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ProfileError(
            f"{TRACKING_ENV}: no tracking server answers at {url} ({reason}): start it or fix "
            "the URL"
        ) from None


def parse_redis(connection_string: str) -> dict[str, Any]:
    """Feast's ``host:port,key=value,...`` Redis connection string as redis-py arguments."""
    first, *options = [part.strip() for part in connection_string.split(",") if part.strip()]
    host, _, port = first.rpartition(":") if ":" in first else (first, "", "6379")
    if not host or not port.isdigit():
        raise ValueError(f"{first!r} is not HOST:PORT")
    arguments: dict[str, Any] = {"host": host, "port": int(port)}
    for option in options:
        key, _, value = option.partition("=")
        if key == "ssl":
            arguments["ssl"] = value.lower() == "true"
        elif key == "db":
            arguments["db"] = int(value)
        elif key in ("password", "username"):
            arguments[key] = value
        else:
            raise ValueError(f"unknown option {key!r}")
    return arguments


def check_redis(setting: str, connection_string: str) -> None:
    """``PING`` the Redis named by a Feast connection string; :class:`ProfileError` on failure."""
    import redis

    try:
        arguments = parse_redis(connection_string)
    except ValueError as error:
        raise ProfileError(
            f"{setting} is not a Redis connection string ({error}): write it as "
            "HOST:6379,password=PASSWORD"
        ) from None
    where = f"{arguments['host']}:{arguments['port']}"
    client = redis.Redis(**arguments, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        client.ping()
    except (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError) as error:
        if "password" not in arguments:
            raise ProfileError(
                f"{setting}: Redis at {where} needs a password: add password=... to it"
            ) from None
        if isinstance(error, redis.exceptions.AuthenticationError) or "WRONGPASS" in str(error):
            raise ProfileError(
                f"{setting}: Redis at {where} refused the password: fix password= in the "
                "secret that sets it"
            ) from None
        raise ProfileError(f"{setting}: Redis at {where} failed: {_first_line(error)}") from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        raise ProfileError(
            f"{setting}: no Redis answers at {where} ({_first_line(error)}): start it or fix "
            "the host and port"
        ) from None
    finally:
        client.close()


def _first_line(error: object) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
