"""mlgen_runtime.backends.rayserve: the loopback config, what processes listen on, and
stopping processes that left their parent's session (as Ray's workers do).

Ray itself is not needed here; the Ray Serve backend's smoke test runs ``serve_run``
against a real ``serve run`` (mlgen's slow tier and the generated repository's tests).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mlgen_runtime.backends import rayserve
from mlgen_runtime.process import ServerError

CONFIG = {
    "proxy_location": "EveryNode",
    "http_options": {"host": "0.0.0.0", "port": 8000, "request_timeout_s": 30},
    "applications": [{"name": "m", "route_prefix": "/", "import_path": "m.serving.app:d"}],
}


def test_loopback_config_moves_only_the_proxy(tmp_path: Path) -> None:
    source = tmp_path / "serve_config.yaml"
    source.write_text(yaml.safe_dump(CONFIG))
    written = yaml.safe_load(
        rayserve.loopback_config(source, 4321, tmp_path / "c.yaml").read_text()
    )
    assert written["http_options"] == {"host": "127.0.0.1", "port": 4321, "request_timeout_s": 30}
    assert written["proxy_location"] == "HeadOnly"
    assert written["applications"] == CONFIG["applications"]


def test_loopback_config_refuses_a_file_without_applications(tmp_path: Path) -> None:
    source = tmp_path / "serve_config.yaml"
    source.write_text("http_options: {port: 8000}\n")
    with pytest.raises(ServerError, match="no applications"):
        rayserve.loopback_config(source, 1, tmp_path / "c.yaml")


def test_ray_environment_keeps_ray_local(tmp_path: Path) -> None:
    env = rayserve.ray_environment(tmp_path, {"PATH": "/bin"})
    assert env["PATH"] == "/bin" and env["RAY_TMPDIR"] == str(tmp_path)
    assert env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    assert env["RAY_USAGE_STATS_ENABLED"] == "0"


@pytest.mark.parametrize(("family", "host"), [(socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")])
def test_listening_sockets_name_loopback_and_wildcard_listeners(family: int, host: str) -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as loopback,
        socket.socket(family, socket.SOCK_STREAM) as everywhere,
    ):
        loopback.bind(("127.0.0.1", 0))
        loopback.listen()
        everywhere.bind((host, 0))
        everywhere.listen()
        name = Path(f"/proc/{os.getpid()}/stat").read_text().split("(")[1].split(")")[0]
        found = rayserve.listening_sockets({os.getpid(): name})
        local_port, wildcard_port = loopback.getsockname()[1], everywhere.getsockname()[1]
    by_port = {entry["port"]: entry["host"] for entry in found}
    assert by_port[local_port] == "127.0.0.1"
    assert by_port[wildcard_port] == host
    unexpected, known = rayserve.wildcard_listeners(found)
    assert known == [] and f"{name} {host}:{wildcard_port}" in unexpected
    replica = [{"process": "ray::ServeRepli", "host": "::", "port": 1}]
    assert rayserve.wildcard_listeners(replica) == ([], ["ray::ServeRepli :::1"])


# A parent whose child starts a session of its own and ignores SIGTERM, as Ray's workers
# are in sessions of their own: a process-group stop does not reach it.
_TREE = """
import os, signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"],
    start_new_session=True)
print(child.pid, flush=True)
time.sleep(600)
"""


def test_descendants_and_reap_stop_a_process_outside_the_group() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _TREE], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        seen = rayserve.descendants(parent.pid)
        assert child in seen
        os.killpg(parent.pid, 15)  # the group: the parent only
        parent.wait(timeout=10)
        time.sleep(0.2)
        assert Path(f"/proc/{child}").exists()  # survived the group stop
        killed = rayserve.reap(seen, timeout=1)
        assert killed == [f"{seen[child]} (pid {child})"]
        deadline = time.monotonic() + 10
        while rayserve._alive(child, seen[child]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not rayserve._alive(child, seen[child])
    finally:
        if parent.poll() is None:
            parent.kill()
