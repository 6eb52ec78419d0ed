"""mlgen_runtime.process against real subprocesses: ``python -m http.server`` as the server,
and small Python scripts for the ways a server can misbehave (exit early, never answer,
ignore SIGTERM, leave children behind)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlgen_runtime import process
from mlgen_runtime.process import (
    ServerError,
    free_port,
    free_ports,
    running,
    stop,
    wait_until_ready,
)


def http_server(port: int, directory: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "--directory",
        str(directory),
    ]


def script(body: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(body)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); /proc says whether it has exited
    status = Path(f"/proc/{pid}/stat")
    return not status.exists() or status.read_text().split(") ", 1)[1][:1] != "Z"


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(3)
    assert len(set(ports)) == 3
    for port in [*ports, free_port()]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((process.HOST, port))


def test_running_serves_then_stops_the_http_server(tmp_path: Path) -> None:
    (tmp_path / "ready").write_text("ok")
    port = free_port()
    with running(
        http_server(port, tmp_path), f"http://127.0.0.1:{port}/ready", timeout=30
    ) as server:
        assert process.read_text(f"http://127.0.0.1:{port}/ready") == "ok"
        assert process.http_status(f"http://127.0.0.1:{port}/missing") == 404
        pid = server.pid
    assert server.process.returncode is not None
    assert not alive(pid)
    with pytest.raises(OSError):
        process.http_status(f"http://127.0.0.1:{port}/ready", timeout=1)


def test_a_server_that_exits_fails_at_once_with_its_output() -> None:
    command = script("""
        import sys
        print("loading model.onnx")
        print("error: model.onnx not found", file=sys.stderr)
        sys.exit(3)
    """)
    ready = f"http://127.0.0.1:{free_port()}/ready"
    with pytest.raises(ServerError) as caught, running(command, ready, timeout=120):
        pytest.fail("the block must not run")
    assert caught.value.returncode == 3
    assert "exited with status 3" in str(caught.value)
    assert "error: model.onnx not found" in caught.value.output
    assert "loading model.onnx" in str(caught.value)


def test_not_ready_in_time_reports_the_last_answer_and_stops_the_server(tmp_path: Path) -> None:
    port = free_port()
    ready = f"http://127.0.0.1:{port}/ready"
    with (
        pytest.raises(ServerError) as caught,
        running(http_server(port, tmp_path), ready, timeout=1.5),
    ):
        pytest.fail("the server was never ready")
    assert "not ready within 1.5 s" in str(caught.value)
    assert caught.value.returncode is None
    with pytest.raises(OSError):
        process.http_status(f"http://127.0.0.1:{port}/", timeout=1)


def test_a_check_may_end_the_wait_at_once() -> None:
    def final_503() -> bool:
        raise ServerError("the server is not ready: model failed to load")

    with pytest.raises(ServerError, match="model failed to load"):
        wait_until_ready(final_503, timeout=60)


def test_a_callable_check_is_polled_until_true() -> None:
    answers = iter([False, False, True])
    waited = wait_until_ready(lambda: next(answers), timeout=30, interval=0.01)
    assert waited >= 0


def test_stop_kills_children_and_processes_that_ignore_sigterm(tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    marker = tmp_path / "ready"
    command = script(f"""
        import pathlib, signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
        pathlib.Path({str(child_pid)!r}).write_text(str(child.pid))
        pathlib.Path({str(marker)!r}).write_text("up")
        time.sleep(600)
    """)
    with running(command, marker.exists, timeout=30, stop_timeout=1) as server:
        pid = int(child_pid.read_text())
        assert alive(pid)
    assert server.process.returncode == -9
    assert not alive(pid)


def test_stop_without_a_group_signals_only_the_process() -> None:
    started = subprocess.Popen(script("import time; time.sleep(600)"))
    assert stop(started, timeout=5) == -15
    assert stop(started, timeout=5) == -15  # stopping twice is harmless


def test_output_tail_prefers_selected_lines(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {n}\n" for n in range(30)) + "E1203 bad config\nline 30\n")
    assert process.output_tail(log, lines=2) == "E1203 bad config\nline 30"
    assert process.output_tail(log, select=lambda line: line.startswith("E")) == "E1203 bad config"
    assert process.output_tail(tmp_path / "absent.log") == ""


def test_a_post_status_a_source_environment_and_the_processes_left(tmp_path: Path) -> None:
    package = tmp_path / "src" / "toy_server"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            import sys
            from http.server import BaseHTTPRequestHandler, HTTPServer

            class Handler(BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(200)
                    self.end_headers()

                def do_POST(self):
                    body = self.rfile.read(int(self.headers["Content-Length"]))
                    json = self.headers["Content-Type"] == "application/json"
                    self.send_response(200 if json and body == b"{}" else 400)
                    self.end_headers()

            HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
            """
        )
    )
    port = free_port()
    marker = f"toy_server_{port}"
    environment = process.source_environment(tmp_path / "src", {"MARKER": marker})
    assert environment["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path / "src")
    command = [sys.executable, "-c", "import runpy; runpy.run_module('toy_server')", str(port)]
    url = f"http://127.0.0.1:{port}/"
    with running([*command, marker], url, timeout=30, env=environment):
        json = {"Content-Type": "application/json"}
        assert process.http_status(url, data=b"{}", headers=json) == 200
        assert process.http_status(url, data=b"{not json", headers=json) == 400
        assert any(marker in line for line in process.processes_mentioning(marker))
    assert process.processes_mentioning(marker) == []
