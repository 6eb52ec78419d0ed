"""Ray Serve on loopback for smoke tests: ``serve run`` a repository's config, then stop it all.

Standard library only (plus ``pyyaml``, a core dependency); ``ray[serve]`` is needed by the
server it starts, not by this module.

* :func:`loopback_config`: a copy of ``serve_config.yaml`` whose HTTP proxy listens on
  ``127.0.0.1`` and a given port (the repository's config listens on ``0.0.0.0`` for the
  container);
* :func:`ray_environment`: the variables Ray needs here: no usage statistics, the node on
  loopback (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``), its session files below a folder of
  the caller's (``RAY_TMPDIR``) instead of ``/tmp/ray``;
* :func:`serve_run`: ``serve run CONFIG`` until the block ends, ready once the app's
  readiness route answers 200 through Serve's proxy. Ray's workers start sessions of
  their own, so stopping the process group is not enough: every process started below
  ``serve run`` is recorded while it runs and, after the group is stopped, waited for and
  killed if it lingers. :attr:`RayServe.leftovers` lists what had to be killed;
* :func:`listening_sockets`: the TCP addresses the processes listen on (from ``/proc``),
  so a smoke test can say what Ray bound. Ray Serve's replicas open their
  inter-deployment gRPC server on ``[::]`` (hard-coded in Ray 2.x: see
  :data:`KNOWN_WILDCARD_LISTENERS`); everything else must be loopback.
* :func:`compile_ray` precompiles Ray's bytecode: with ``PYTHONDONTWRITEBYTECODE=1`` set
  and no ``.pyc`` files, Ray's dashboard agent starts slower than the raylet waits for it
  and the raylet dies (ray-project/ray#65983).

Startup takes about 25 s on 2 idle cores once bytecode is compiled, about a minute under
load: give :func:`serve_run` a generous ``timeout``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlgen_runtime.process import HOST, ServerError, http_status, running

READY_TIMEOUT_SECONDS = 300.0
"""Default wait for ``serve run`` to deploy the app (Ray start ~25-60 s on 2 cores)."""
EXIT_TIMEOUT_SECONDS = 30.0
"""How long Ray's workers may take to exit after the raylet is gone."""
KNOWN_WILDCARD_LISTENERS = ("ray::ServeReplica",)
"""Processes that listen on every address whatever Ray is told: a Serve replica's
inter-deployment gRPC server (``[::]:0`` in ``ray/serve/_private/replica.py``)."""


def loopback_config(config: Path, port: int, destination: Path) -> Path:
    """Write ``config`` (a Serve config file) to ``destination`` with the HTTP proxy on
    ``127.0.0.1:port`` and the proxy on the head node only; return ``destination``."""
    loaded = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
    if not isinstance(loaded, dict) or not loaded.get("applications"):
        raise ServerError(f"{config} is not a Serve config file (no applications)")
    loaded["http_options"] = {**(loaded.get("http_options") or {}), "host": HOST, "port": port}
    loaded["proxy_location"] = "HeadOnly"
    destination.write_text(yaml.safe_dump(loaded, sort_keys=False), encoding="utf-8")
    return destination


def ray_environment(temp_dir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) plus what Ray needs on loopback."""
    return {
        **(os.environ if base is None else base),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_TMPDIR": str(temp_dir),
        "RAY_DEDUP_LOGS": "0",
    }


def serve_command(config: Path, python: str | None = None) -> list[str]:
    """``serve run CONFIG`` with the ``serve`` script of ``python``'s environment."""
    interpreter = Path(python or sys.executable)
    return [str(interpreter.parent / "serve"), "run", str(config)]


def compile_ray(python: str | Path) -> bool:
    """Precompile the bytecode of ``python``'s Ray; ``False`` when Ray is not installed."""
    located = subprocess.run(
        [str(python), "-c", "import os, ray; print(os.path.dirname(ray.__file__))"],
        capture_output=True,
        text=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    if located.returncode != 0:
        return False
    package = located.stdout.strip().splitlines()[-1]
    subprocess.run([str(python), "-m", "compileall", "-q", "-j", "0", package], check=True)
    return True


@dataclass
class RayServe:
    """A running ``serve run``: its base URL, process and what was left over at the end."""

    base_url: str
    pid: int
    started: dict[int, str] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)

    def record(self) -> dict[int, str]:
        """Record (and return) every process now running below ``serve run``."""
        self.started.update(descendants(self.pid))
        return self.started


@contextmanager
def serve_run(
    config: Path,
    port: int,
    *,
    env: Mapping[str, str],
    ready_path: str = "/ready",
    timeout: float = READY_TIMEOUT_SECONDS,
    python: str | None = None,
) -> Iterator[RayServe]:
    """Run ``serve run config`` (a loopback config on ``port``) until the block ends.

    Ready once ``ready_path`` answers 200 through Serve's proxy. Afterwards the process
    group is stopped, then every process seen below ``serve run`` is waited for (up to
    :data:`EXIT_TIMEOUT_SECONDS`) and killed if still there.

    Raises:
        ServerError: ``serve run`` exited or the app was not ready within ``timeout``.
    """
    base_url = f"http://{HOST}:{port}"
    server: RayServe | None = None

    def ready() -> bool:
        if server is not None:
            server.record()
        return http_status(f"{base_url}{ready_path}") == 200

    try:
        with running(
            serve_command(config, python),
            ready,
            timeout=timeout,
            env=env,
            stop_timeout=20.0,
            select=lambda line: "Error" in line or "error" in line,
        ) as process:
            server = RayServe(base_url, process.pid)
            server.record()
            try:
                yield server
            finally:
                server.record()
    finally:
        if server is not None:
            server.leftovers = reap(server.started, EXIT_TIMEOUT_SECONDS)


def descendants(pid: int) -> dict[int, str]:
    """Every live process below ``pid`` (its children, theirs, ...): pid -> command name."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
        names[int(entry.name)] = name
    found: dict[int, str] = {}
    pending = list(children.get(pid, []))
    while pending:
        child = pending.pop()
        if child not in found:
            found[child] = names.get(child, "?")
            pending.extend(children.get(child, []))
    return found


def _alive(pid: int, name: str) -> bool:
    """Whether ``pid`` still runs the process called ``name`` (not a zombie, not reused)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat[stat.rindex(")") + 2 :].split()[0]
    return state != "Z" and stat[stat.index("(") + 1 : stat.rindex(")")] == name


def reap(processes: Mapping[int, str], timeout: float) -> list[str]:
    """Wait up to ``timeout`` s for ``processes`` to exit, SIGKILL the rest; return those
    killed as ``"NAME (pid N)"``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p, n) for p, n in processes.items()):
        time.sleep(0.2)
    killed = []
    for pid, name in processes.items():
        if _alive(pid, name):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.append(f"{name} (pid {pid})")
    return killed


def listening_sockets(pids: Mapping[int, str] | list[int]) -> list[dict[str, Any]]:
    """The TCP sockets ``pids`` listen on: ``{"pid", "process", "host", "port"}`` each."""
    names = dict(pids) if isinstance(pids, Mapping) else {pid: "?" for pid in pids}
    by_inode: dict[str, tuple[str, int]] = {}
    for table, family in (("tcp", 4), ("tcp6", 6)):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] != "0A":  # LISTEN
                continue
            address, port_hex = parts[1].split(":")
            by_inode[parts[9]] = (_address(address, family), int(port_hex, 16))
    found = []
    for pid, name in names.items():
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in by_inode:
                host, port = by_inode[target[8:-1]]
                found.append({"pid": pid, "process": name, "host": host, "port": port})
    return found


def _address(hexadecimal: str, family: int) -> str:
    raw = bytes.fromhex(hexadecimal)
    if family == 4:
        return ".".join(str(byte) for byte in reversed(raw))
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]  # 4 little-endian words
    packed = b"".join(words)
    if packed[:12] == b"\0" * 10 + b"\xff\xff":  # IPv4-mapped
        return ".".join(str(byte) for byte in packed[12:])
    groups = [f"{int.from_bytes(packed[i : i + 2], 'big'):x}" for i in range(0, 16, 2)]
    return "::" if all(g == "0" for g in groups) else ":".join(groups)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (as :func:`listening_sockets` writes it) is a loopback address."""
    return host.startswith("127.") or host in ("::1", "0:0:0:0:0:0:0:1")


def wildcard_listeners(sockets: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """``(unexpected, known)`` non-loopback listeners, each ``"process host:port"``;
    known ones are :data:`KNOWN_WILDCARD_LISTENERS`'."""
    unexpected: list[str] = []
    known: list[str] = []
    for socket in sockets:
        if is_loopback(socket["host"]):
            continue
        label = f"{socket['process']} {socket['host']}:{socket['port']}"
        is_known = any(socket["process"].startswith(n[:15]) for n in KNOWN_WILDCARD_LISTENERS)
        (known if is_known else unexpected).append(label)
    return unexpected, known
