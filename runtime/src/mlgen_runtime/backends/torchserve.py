"""Run TorchServe: start it, wait until the model is ready, answer the kubelet, stop it.

Standard library only: the serving image (``pytorch/torchserve``) installs mlgen-runtime
without its dependencies and runs this module as its main process. Used three ways:

* a repository's smoke test and serving tests use :func:`running_server`: a private
  working folder, free loopback ports, and a clean stop whatever happens;
* ``python -m mlgen_runtime.backends.torchserve --config serving/config.local.properties
  --model-store artifacts/model-store`` serves a model store on this machine;
* the container runs ``python -m mlgen_runtime.backends.torchserve --config
  /home/model-server/config.properties --workdir /tmp/torchserve --health-port 8083``
  with the production config. It then also answers Kubernetes' probes on the health port:
  with token authorization on, TorchServe's own ``/ping`` answers 400 to a request
  without the inference token, so the kubelet cannot use it; this process holds the
  tokens (``key_file.json`` in its working folder) and asks TorchServe for it.

Health endpoints: ``GET /live`` is 200 while TorchServe runs and its inference port
answers HTTP; ``GET /ready`` is 200 once the management API reports a READY worker for
the model, else 503 with the reason.

Stopping (SIGTERM, SIGINT, or leaving :func:`running_server`): ``torchserve --stop``
(TorchServe's Java frontend shuts its workers down), then
:func:`mlgen_runtime.process.stop` on the whole process group, so no Java or worker
process is left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

from mlgen_runtime import process

HOST = process.HOST
READY_TIMEOUT_SECONDS = 90.0
STOP_GRACE_SECONDS = 20.0
REQUEST_TIMEOUT_SECONDS = 5.0
KEY_FILE = "key_file.json"
LOG_CONFIG = "log4j2.xml"
OUTPUT_FILE = "torchserve.out"
ADDRESS_KEYS = ("inference_address", "management_address", "metrics_address")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerError(process.ServerError):
    """TorchServe did not start, did not get the model ready, or did not stop."""


def unavailable() -> str | None:
    """Why TorchServe cannot run here, or ``None`` when it can."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "java is not installed (TorchServe's frontend is a Java program)"
    if importlib.util.find_spec("ts") is None:
        return "the torchserve package is not installed"
    if importlib.util.find_spec("yaml") is None:
        return "PyYAML is not installed (TorchServe's workers need it and would restart forever)"
    return None


# ------------------------------------------------------------------ configuration
def read_properties(path: Path) -> dict[str, str]:
    """A Java properties file as a dict (``#``/``!`` comments, ``=`` or ``:`` separators,
    backslash line continuations), the format TorchServe reads ``config.properties`` in."""
    properties: dict[str, str] = {}
    pending = ""
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line[0] in "#!":
            continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending = line[:-1]
            continue
        separators = [i for i in (line.find("="), line.find(":")) if i > 0]
        cut = min(separators) if separators else len(line)
        key, value = line[:cut].strip(), line[cut + 1 :].strip()
        properties[key] = value.replace("\\:", ":").replace("\\=", "=")
    if pending:
        key, _, value = pending.partition("=")
        properties[key.strip()] = value.strip()
    return properties


def write_properties(path: Path, properties: Mapping[str, str]) -> None:
    """Write ``properties`` in the Java properties format TorchServe reads."""
    lines = [f"{key}={value}" for key, value in properties.items()]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def model_names(properties: Mapping[str, str]) -> list[str]:
    """The models ``load_models`` names (``name=file.mar`` or ``file.mar``), in order."""
    names = []
    for entry in properties.get("load_models", "").split(","):
        entry = entry.strip()
        if entry and entry not in ("all", "ALL"):
            name, _, archive = entry.partition("=")
            names.append(name if archive else name.removesuffix(".mar"))
    return names


def local_paths(properties: Mapping[str, str], base: Path, model_store: Path) -> dict[str, str]:
    """``properties`` (read from ``base``) serving ``model_store``, runnable here.

    ``load_models`` is dropped (the model is named on the command line); a
    ``metrics_config`` relative to ``base`` is made absolute, and one that does not
    exist here (the container's path in config.properties) is replaced by the file
    of the same name next to ``base``.
    """
    local = {**properties, "model_store": str(model_store)}
    local.pop("load_models", None)
    metrics_config = local.get("metrics_config")
    if metrics_config:
        path = Path(metrics_config)
        if not path.is_absolute():
            path = Path(base).parent / path
        if not path.is_file():
            path = Path(base).parent / path.name
        local["metrics_config"] = str(path.resolve())
    return local


def loopback_config(base: Path, model_store: Path, host: str = HOST) -> dict[str, str]:
    """``base`` with every API (gRPC too) on a free port of ``host``, serving ``model_store``
    (see :func:`local_paths`)."""
    properties = local_paths(read_properties(base), Path(base), model_store)
    ports = iter(process.free_ports(len(ADDRESS_KEYS) + 2, host))
    for key in ADDRESS_KEYS:
        properties[key] = f"http://{host}:{next(ports)}"
    for api in ("inference", "management"):  # TorchServe always opens its gRPC APIs too
        properties[f"grpc_{api}_address"] = host
        properties[f"grpc_{api}_port"] = str(next(ports))
    return properties


# ------------------------------------------------------------------ HTTP
def http(
    url: str,
    token: str | None = None,
    method: str = "GET",
    timeout: float = REQUEST_TIMEOUT_SECONDS,
) -> tuple[int, Any]:
    """One request (no proxy); the status and the decoded JSON body (text if it is not JSON)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers, method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def ready_workers(description: Any) -> int:
    """READY workers in a ``GET /models/<name>`` answer."""
    if not isinstance(description, list):
        return 0
    return sum(
        1
        for version in description
        if isinstance(version, dict)
        for worker in version.get("workers") or []
        if worker.get("status") == "READY"
    )


# ------------------------------------------------------------------ the process
@dataclass
class TorchServe:
    """One TorchServe process tree, started with :meth:`start`, stopped with :meth:`stop`.

    ``workdir`` is its working folder: ``key_file.json`` (token authorization), the
    ``logs/`` and the ``tmp/`` folder TorchServe unpacks archives and keeps its pid file
    in (a private ``TMPDIR``, so servers of other checkouts are never touched).
    ``models`` are ``name=file.mar`` entries passed on the command line.
    """

    config: Path
    workdir: Path
    model_name: str
    models: tuple[str, ...] = ()
    properties: dict[str, str] = field(default_factory=dict)
    log_config: Path | None = None
    capture: bool = True
    """Write TorchServe's output to ``workdir/torchserve.out`` (else: inherit stdout)."""
    process: subprocess.Popen[bytes] | None = None
    _output: IO[bytes] | None = None

    @classmethod
    def from_config(
        cls,
        config: Path,
        workdir: Path,
        model_name: str | None = None,
        models: tuple[str, ...] = (),
        log_config: Path | None = None,
    ) -> TorchServe:
        """The server of ``config``; ``model_name`` defaults to the first of ``load_models``."""
        properties = read_properties(config)
        names = model_names(properties) or [entry.split("=")[0] for entry in models]
        if model_name is None and not names:
            raise ServerError(f"{config}: load_models names no model; pass the model name")
        name = model_name or names[0]
        return cls(
            Path(config).resolve(), Path(workdir).resolve(), name, models, properties, log_config
        )

    def url(self, api: str) -> str:
        """Base URL of ``api`` (``inference``, ``management`` or ``metrics``), loopback."""
        address = self.properties.get(f"{api}_address", "")
        return address.replace("://0.0.0.0:", f"://{HOST}:").rstrip("/")

    @property
    def token_auth(self) -> bool:
        """Whether TorchServe's token authorization is on (absent means on)."""
        return self.properties.get("disable_token_authorization", "false").lower() != "true"

    def token(self, kind: str) -> str | None:
        """The current ``inference``/``management``/``API`` key (None without token auth)."""
        if not self.token_auth:
            return None
        try:
            keys = json.loads((self.workdir / KEY_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        return str(keys.get(kind, {}).get("key") or "") or None

    def refresh_token(self, kind: str) -> None:
        """Ask TorchServe for a new ``kind`` key (the old one expired)."""
        http(f"{self.url('management')}/token?type={kind}", self.token("API"), method="PUT")

    def environment(self) -> dict[str, str]:
        """TorchServe's environment: a private ``TMPDIR`` and log folder in ``workdir``."""
        tmp, logs = str(self.workdir / "tmp"), str(self.workdir / "logs")
        return {
            **os.environ,
            "TMPDIR": tmp,
            "TEMP": tmp,
            "LOG_LOCATION": logs,
            "METRICS_LOCATION": logs,
            "PYTHONUNBUFFERED": "1",
        }

    def command(self, *arguments: str) -> list[str]:
        """The ``torchserve`` command (the one beside this interpreter first)."""
        beside = Path(sys.executable).parent / "torchserve"
        executable = str(beside) if beside.is_file() else shutil.which("torchserve")
        if executable is None:
            raise ServerError("the torchserve command is not installed")
        return [executable, *arguments]

    def start(self) -> None:
        """Start ``torchserve --foreground`` in a new process group; return at once."""
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise ServerError("java is not installed (TorchServe's frontend needs Java 11+)")
        for folder in ("tmp", "logs"):
            (self.workdir / folder).mkdir(parents=True, exist_ok=True)
        arguments = ["--foreground", "--ts-config", str(self.config), "--ncs"]
        if self.models:
            arguments += ["--models", *self.models]
        if self.log_config is not None:
            arguments += ["--log-config", str(self.log_config)]
        if self.capture:
            self._output = (self.workdir / OUTPUT_FILE).open("wb")
        self.process = subprocess.Popen(
            self.command(*arguments),
            cwd=self.workdir,
            env=self.environment(),
            stdout=self._output,
            stderr=subprocess.STDOUT if self.capture else None,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def running(self) -> bool:
        """Whether the TorchServe process runs."""
        return self.process is not None and self.process.poll() is None

    def model_status(self) -> tuple[bool, str]:
        """Whether the model has a READY worker, and why not."""
        url = f"{self.url('management')}/models/{self.model_name}"
        for attempt in range(2):
            try:
                status, body = http(url, self.token("management"))
            except OSError as error:
                return False, f"management API: {error}"
            if status == 400 and self.token_auth and attempt == 0:
                self.refresh_token("management")  # the management key expired
                continue
            if status != 200:
                return False, f"GET /models/{self.model_name}: {status} {body}"
            workers = ready_workers(body)
            return workers > 0, f"{workers} READY worker(s)"
        return False, "the management key was refused"

    def alive(self) -> tuple[bool, str]:
        """Whether the process runs and its inference port answers HTTP."""
        if not self.running():
            return False, "TorchServe is not running"
        try:
            status, _ = http(f"{self.url('inference')}/ping", self.token("inference"))
        except OSError as error:
            return False, f"inference API: {error}"
        return status < 500, f"/ping answered {status}"

    def healthy(self) -> bool:
        """``/ping`` says Healthy and the model has a READY worker (``/ping`` alone is not
        enough: it answers Healthy while a worker that cannot load the model restarts)."""
        status, body = http(f"{self.url('inference')}/ping", self.token("inference"))
        if status != 200:
            raise OSError(f"/ping: {status} {body}")
        ready, reason = self.model_status()
        if not ready:
            raise OSError(reason)
        return True

    def wait_until_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> float:
        """Wait until :meth:`healthy`; return the seconds waited.

        Raises:
            ServerError: TorchServe exited or was not ready in time (with its log's end).
        """
        if self.process is None:
            raise ServerError("TorchServe was not started")
        try:
            return process.wait_until_ready(
                self.healthy, timeout, process=self.process, interval=0.25
            )
        except process.ServerError as error:
            raise ServerError(f"{error}\n{self.log_tail()}", error.returncode) from None

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """``torchserve --stop``, then :func:`mlgen_runtime.process.stop` on the group."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(OSError, subprocess.SubprocessError, ServerError):
                subprocess.run(
                    self.command("--stop"),
                    cwd=self.workdir,
                    env=self.environment(),
                    capture_output=True,
                    timeout=grace,
                    check=False,
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
        process.stop(self.process, 5.0, group=True)
        if self._output is not None:
            self._output.close()

    def log_tail(self, lines: int = 30) -> str:
        """The end of TorchServe's output and model log, for error messages."""
        parts = []
        for path in (self.workdir / OUTPUT_FILE, self.workdir / "logs" / "model_log.log"):
            tail = process.output_tail(path, lines)
            if tail:
                parts.append(f"--- {path.name} ---\n{tail}")
        return "\n".join(parts)


@contextlib.contextmanager
def running_server(
    mar: Path, config: Path, timeout: float = READY_TIMEOUT_SECONDS, host: str = HOST
) -> Iterator[TorchServe]:
    """Serve the archive ``mar`` (``<model name>.mar``) on free ports of ``host`` until the
    block ends; yield the server.

    ``config`` (a repository's ``serving/config.local.properties``) is copied with its
    addresses, model store and metrics config rewritten. The server is stopped however
    the block ends; a :class:`ServerError` carries the end of TorchServe's logs.
    """
    mar = Path(mar).resolve()
    model_name = mar.name.removesuffix(".mar")
    with tempfile.TemporaryDirectory(prefix="torchserve-") as scratch:
        workdir = Path(scratch)
        written = workdir / "config.properties"
        write_properties(written, loopback_config(Path(config), mar.parent, host))
        server = TorchServe.from_config(written, workdir, model_name, (f"{model_name}={mar.name}",))
        try:
            server.start()
            server.wait_until_ready(timeout)
            yield server
        finally:
            server.stop()


# ------------------------------------------------------------------ health endpoints
def health_server(server: TorchServe, port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """An HTTP server with ``/live`` and ``/ready`` for ``server`` (not started)."""

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/live":
                ok, reason = server.alive()
            elif self.path == "/ready":
                ok, reason = server.model_status() if server.running() else (False, "stopped")
            else:
                self._answer(404, {"status": "not found"})
                return
            self._answer(200 if ok else 503, {"status": "ok" if ok else "not ok", "reason": reason})

        def _answer(self, status: int, body: dict[str, str]) -> None:
            payload = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return  # probes every few seconds: keep the log for TorchServe

    return ThreadingHTTPServer((host, port), Health)


# ------------------------------------------------------------------ command line
def serve(server: TorchServe, health_port: int | None, health_host: str = "0.0.0.0") -> int:
    """Run ``server`` in the foreground (its output on this process's) until it exits or
    SIGTERM / SIGINT arrives; answer the probes on ``health_port``. Returns the exit status."""
    server.capture = False  # the container's log is this process's standard output
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stopping.set())
    health = health_server(server, health_port, health_host) if health_port else None
    server.start()
    if health is not None:
        threading.Thread(target=health.serve_forever, daemon=True).start()
    print(
        f"torchserve started; inference {server.url('inference')}, management "
        f"{server.url('management')}, metrics {server.url('metrics')}"
        + (f", health http://{health_host}:{health_port}" if health else ""),
        flush=True,
    )
    while not stopping.is_set() and server.running():
        stopping.wait(0.5)
    unexpected = not stopping.is_set()  # TorchServe exited by itself: a failure
    if health is not None:
        health.shutdown()
    server.stop()
    print("torchserve exited unexpectedly" if unexpected else "torchserve stopped", flush=True)
    return 1 if unexpected else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m mlgen_runtime.backends.torchserve``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m mlgen_runtime.backends.torchserve", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--config", type=Path, required=True, help="TorchServe config.properties")
    parser.add_argument(
        "--model-store",
        type=Path,
        default=None,
        help="serve <model name>.mar from this folder (local: the config's paths are rewritten)",
    )
    parser.add_argument("--model-name", default=None, help="default: the config's load_models")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="key_file.json, logs/, tmp/ (default: ./torchserve)",
    )
    parser.add_argument("--health-port", type=int, default=None, help="answer /live and /ready")
    parser.add_argument("--health-host", default="0.0.0.0")
    args = parser.parse_args(argv)
    workdir = (args.workdir or Path("torchserve")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    config: Path = args.config
    # log4j2.xml next to the config (the container's): TorchServe logs to stdout only.
    log_config: Path | None = config.parent / LOG_CONFIG
    if log_config is not None and not log_config.is_file():
        log_config = None
    models: tuple[str, ...] = ()
    try:
        if args.model_store is not None:
            base = read_properties(config)
            name = args.model_name or (model_names(base) or [""])[0]
            mar = args.model_store.resolve() / f"{name}.mar"
            if not mar.is_file():
                parser.error(f"{mar} does not exist: build the model archive first")
            config = workdir / "config.properties"
            write_properties(config, local_paths(base, args.config, mar.parent))
            models = (f"{name}={mar.name}",)
        server = TorchServe.from_config(config, workdir, args.model_name, models, log_config)
        return serve(server, args.health_port, args.health_host)
    except ServerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
