"""Throwaway PostgreSQL and Redis servers on loopback, for tests and benchmarks.

The production profile (:mod:`mlgen_runtime.profile`) keeps MLflow's tracking store and
Feast's registry in PostgreSQL and Feast's online store in Redis. Tests of it run against
the real servers from Debian's packages (``postgresql``, ``redis-server``; installed by
mlgen's ``scripts/system-tools``), each started here in its own temporary data folder on
a free port and always stopped afterwards (:func:`mlgen_runtime.process.running`):

* :func:`postgres`: ``initdb`` with password authentication (SCRAM), then ``postgres``
  in the foreground. PostgreSQL refuses to run as root, so as root the server runs as the
  ``postgres`` user (created by the Debian package; ``nobody`` otherwise) via ``setpriv``.
* :func:`redis`: ``redis-server`` without persistence, with a password.

Where the servers already run (CI service containers), ``$MLGEN_TEST_POSTGRES_URL``
(``postgresql://USER:PASSWORD@HOST:PORT``) and ``$MLGEN_TEST_REDIS_URL``
(``redis://:PASSWORD@HOST:PORT``) name them and nothing is started.

Usage::

    from mlgen_runtime import servers

    with servers.postgres() as pg, servers.redis() as cache:
        tracking_uri = pg.url(pg.create_database("mlflow"))
        feast_online = cache.connection_string
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mlgen_runtime.process import HOST, free_port, running

__all__ = ["Postgres", "Redis", "postgres", "postgres_binary", "redis"]

POSTGRES_USER = "mlgen"
POSTGRES_URL_ENV = "MLGEN_TEST_POSTGRES_URL"
REDIS_URL_ENV = "MLGEN_TEST_REDIS_URL"
START_TIMEOUT_SECONDS = 60.0


class MissingServerError(RuntimeError):
    """The server's binaries are not installed."""


@dataclass(frozen=True)
class Postgres:
    """A running PostgreSQL server: where it listens and its superuser's credentials."""

    host: str
    port: int
    user: str
    password: str

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        """A SQLAlchemy URL for ``database`` (the form MLflow and Feast's SQL registry take)."""
        return f"{driver}://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` with ``psql``; its output (raises ``CalledProcessError`` on failure)."""
        command = [postgres_binary("psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"]
        command += ["-h", self.host, "-p", str(self.port), "-U", self.user, "-d", database]
        env = {**os.environ, "PGPASSWORD": self.password}
        result = subprocess.run(
            [*command, "-c", sql], env=env, capture_output=True, text=True, check=True
        )
        return result.stdout

    def create_database(self, name: str) -> str:
        """Create the database ``name`` (a plain identifier); return the name."""
        if not name.isidentifier():
            raise ValueError(f"not a plain database name: {name!r}")
        self.psql(f'CREATE DATABASE "{name}"')
        return name


@dataclass(frozen=True)
class Redis:
    """A running Redis server and its password."""

    host: str
    port: int
    password: str

    @property
    def url(self) -> str:
        """``redis://:password@host:port/0`` (redis-py's form)."""
        return f"redis://:{self.password}@{self.host}:{self.port}/0"

    @property
    def connection_string(self) -> str:
        """``host:port,password=...``: the form of Feast's ``online_store.connection_string``."""
        return f"{self.host}:{self.port},password={self.password}"


def postgres_binary(name: str) -> str:
    """The path of PostgreSQL's ``name`` binary: on ``PATH``, else the newest Debian one
    (``/usr/lib/postgresql/<version>/bin``, which is not on ``PATH``)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda path: int(Path(path).parent.parent.name.split(".")[0]),
    )
    if not candidates:
        raise MissingServerError(
            f"PostgreSQL's {name} is not installed: install Debian's postgresql package "
            "(mlgen's scripts/system-tools does)"
        )
    return candidates[-1]


def _run_as() -> tuple[list[str], int | None, int | None]:
    """The command prefix that drops root (``setpriv``) and the user's ids; none if not root."""
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "nobody"):
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            continue
        prefix = ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}"]
        return [*prefix, "--clear-groups"], account.pw_uid, account.pw_gid
    raise MissingServerError("running as root and no unprivileged user to run PostgreSQL as")


@contextmanager
def postgres(timeout: float = START_TIMEOUT_SECONDS) -> Iterator[Postgres]:
    """Start a PostgreSQL server on a free loopback port in a new data folder; yield it.

    The superuser is :data:`POSTGRES_USER` with a random password (SCRAM authentication on
    TCP, so a wrong password is refused as in production). The server and its data folder
    are gone when the block ends. With ``$MLGEN_TEST_POSTGRES_URL`` set, that server is
    yielded instead (its user must be allowed to create databases).
    """
    external = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if external:
        parts = urlsplit(external)
        yield Postgres(
            parts.hostname or HOST, parts.port or 5432, parts.username or "", parts.password or ""
        )
        return
    prefix, uid, gid = _run_as()
    password = secrets.token_hex(12)
    with tempfile.TemporaryDirectory(prefix="mlgen-postgres-") as folder:
        data, pwfile = Path(folder) / "data", Path(folder) / "pwfile"
        pwfile.write_text(password + "\n", encoding="utf-8")
        if uid is not None and gid is not None:
            os.chown(folder, uid, gid)
            os.chown(pwfile, uid, gid)
        initdb = [postgres_binary("initdb"), "-D", str(data), "-U", POSTGRES_USER]
        initdb += ["--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync"]
        subprocess.run([*prefix, *initdb], check=True, capture_output=True)
        port = free_port()
        server = Postgres(HOST, port, POSTGRES_USER, password)
        command = [*prefix, postgres_binary("postgres"), "-D", str(data), "-p", str(port)]
        command += ["-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={folder}"]
        command += ["-c", "fsync=off", "-c", "full_page_writes=off"]
        ready = [postgres_binary("pg_isready"), "-q", "-h", HOST, "-p", str(port)]

        def is_ready() -> bool:
            return subprocess.run(ready, check=False).returncode == 0

        with running(command, is_ready, timeout=timeout):
            yield server


@contextmanager
def redis(timeout: float = START_TIMEOUT_SECONDS) -> Iterator[Redis]:
    """Start ``redis-server`` on a free loopback port, without persistence and with a
    random password; yield it. The server is stopped when the block ends. With
    ``$MLGEN_TEST_REDIS_URL`` set, that server is yielded instead."""
    external = os.environ.get(REDIS_URL_ENV, "").strip()
    if external:
        parts = urlsplit(external)
        yield Redis(parts.hostname or HOST, parts.port or 6379, parts.password or "")
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise MissingServerError(
            "redis-server is not installed: install Debian's redis-server package "
            "(mlgen's scripts/system-tools does)"
        )
    password = secrets.token_hex(12)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mlgen-redis-") as folder:
        command = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly"]
        command += ["no", "--dir", folder, "--requirepass", password, "--daemonize", "no"]

        def is_ready() -> bool:
            with socket.create_connection((HOST, port), timeout=1.0) as connection:
                auth = f"*2\r\n$4\r\nAUTH\r\n${len(password)}\r\n{password}\r\n"
                connection.sendall(auth.encode())
                return connection.recv(64).startswith(b"+OK")

        with running(command, is_ready, timeout=timeout):
            yield Redis(HOST, port, password)
