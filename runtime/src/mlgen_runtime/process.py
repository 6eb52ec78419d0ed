"""Start a local server, wait until it is ready, and always stop it (standard library only).

Every backend's smoke test and serving tests run a real server on loopback: a uvicorn
worker, tritonserver, TorchServe (a Java process with Python workers), a KServe model
server. They all need the same four things, kept here so a fix reaches every repository:

* :func:`free_port` / :func:`free_ports`: TCP ports that are free right now;
* :func:`wait_until_ready`: poll a health URL (or any check) until it answers, failing at
  once, with the end of the server's output, when the process exits first;
* :func:`stop`: SIGTERM to the process's whole group, then SIGKILL to what is left, so
  children (TorchServe's workers, tritonserver's python stubs) never outlive the test;
* :func:`running`: a context manager that does all of the above around a ``with`` block;
* :func:`source_environment`: the environment of a server that imports the repository's
  package from its source tree, uninstalled; :func:`processes_mentioning`: which
  processes are still running a command line (a leak check after a server stopped).

Usage::

    from mlgen_runtime.process import free_port, running

    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "app:app", "--port", str(port)]
    with running(command, f"http://127.0.0.1:{port}/ready") as server:
        ...  # the server answers here; server.output_tail() is its log so far

Requests go to loopback only and never through a proxy from the environment
(``HTTP_PROXY`` would otherwise route ``127.0.0.1`` to a proxy that cannot reach it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.2
TAIL_LINES = 20

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

ReadyCheck = str | Callable[[], bool]
"""A URL that answers HTTP 200 when the server is ready, or a callable returning ``True``
then (it may raise :class:`ServerError` to stop waiting at once, e.g. on a final 503)."""


class ServerError(RuntimeError):
    """The server exited, or did not become ready in time.

    Attributes:
        returncode: the exit status when the process had exited, else ``None``.
        output: the end of the server's output (empty when it was not captured).
    """

    def __init__(self, message: str, returncode: int | None = None, output: str = "") -> None:
        super().__init__(f"{message}\n--- server output ---\n{output}" if output else message)
        self.returncode = returncode
        self.output = output


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = HOST) -> list[int]:
    """``count`` distinct TCP ports free on ``host`` right now.

    All probes stay bound until every port is picked, so the OS cannot hand out the same
    port twice (a server with HTTP, gRPC and metrics ports needs three different ones).
    """
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            probe = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            probe.bind((host, 0))
            ports.append(int(probe.getsockname()[1]))
        return ports


def http_status(
    url: str,
    timeout: float = 2.0,
    *,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> int:
    """The HTTP status of ``GET url``, or of a ``POST`` of ``data`` (with ``headers``),
    never through a proxy; raises :class:`OSError` when nothing answers."""
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def source_environment(
    source_root: Path | str | None, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """This process's environment plus ``env``, with ``source_root`` (a repository's
    ``src/``) first on ``PYTHONPATH``, so a server started with it imports the package
    without it being installed."""
    python_path = [str(source_root) if source_root else None, os.environ.get("PYTHONPATH")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, python_path)),
        **(env or {}),
    }


def processes_mentioning(text: str) -> list[str]:
    """Command lines (arguments joined by spaces) of the running processes that contain
    ``text``, read from ``/proc`` (empty where there is none); processes that end while
    being read are skipped."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in line:
            found.append(line)
    return found


def read_text(url: str, timeout: float = 5.0) -> str:
    """The body of ``GET url`` (no proxy) as text, e.g. a Prometheus ``/metrics`` page."""
    with _OPENER.open(url, timeout=timeout) as response:
        return str(response.read().decode("utf-8"))


def output_tail(
    output: IO[bytes] | Path | None,
    lines: int = TAIL_LINES,
    select: Callable[[str], bool] | None = None,
) -> str:
    """The last ``lines`` non-empty lines of a server's captured output.

    ``output`` is the binary file the process writes to (read from its start) or its
    path. With ``select``, the last matching lines are returned when any match (a
    server's error lines say more than its last lines), else the last lines.
    """
    if output is None:
        return ""
    if isinstance(output, Path):
        if not output.is_file():
            return ""
        raw = output.read_bytes()
    else:
        # pread leaves the offset alone: the server shares it and may be writing now.
        output.flush()
        raw = os.pread(output.fileno(), os.fstat(output.fileno()).st_size, 0)
    kept = [line.rstrip() for line in raw.decode("utf-8", "replace").splitlines() if line.strip()]
    chosen = [line for line in kept if select(line)] if select is not None else []
    return "\n".join((chosen or kept)[-lines:])


def wait_until_ready(
    ready: ReadyCheck,
    timeout: float = READY_TIMEOUT_SECONDS,
    *,
    process: subprocess.Popen[bytes] | None = None,
    output: IO[bytes] | Path | None = None,
    interval: float = POLL_INTERVAL_SECONDS,
    select: Callable[[str], bool] | None = None,
) -> float:
    """Poll ``ready`` until it succeeds; return the seconds waited.

    Args:
        ready: a URL that must answer HTTP 200, or a callable returning ``True`` when
            ready (:class:`OSError` from it counts as "not listening yet").
        timeout: seconds to wait in all.
        process: the server process; when it exits, waiting stops at once.
        output: the file (or path) the process writes its output to, quoted in errors.
        interval: seconds between polls.
        select: which output lines to quote first (see :func:`output_tail`).

    Raises:
        ServerError: the process exited, ``ready`` raised it, or ``timeout`` passed; the
            message ends with the tail of ``output``.
    """
    started = time.monotonic()
    last = "no answer"
    check = _url_check(ready) if isinstance(ready, str) else ready
    while True:
        if process is not None and process.poll() is not None:
            raise ServerError(
                f"the server exited with status {process.returncode} before it was ready",
                process.returncode,
                output_tail(output, select=select),
            )
        try:
            if check():
                return time.monotonic() - started
            last = "not ready"
        except ServerError as error:
            raise ServerError(str(error), None, output_tail(output, select=select)) from None
        except OSError as error:  # not listening yet
            last = str(error)
        if time.monotonic() - started >= timeout:
            raise ServerError(
                f"the server was not ready within {timeout:g} s (last: {last})",
                None,
                output_tail(output, select=select),
            )
        time.sleep(interval)


def _url_check(url: str) -> Callable[[], bool]:
    def check() -> bool:
        status = http_status(url)
        if status != 200:
            raise OSError(f"{url}: HTTP {status}")
        return True

    return check


def stop(
    process: subprocess.Popen[bytes],
    timeout: float = STOP_TIMEOUT_SECONDS,
    *,
    group: bool | None = None,
) -> int:
    """Stop ``process`` and, when it leads its own process group, every process in it.

    SIGTERM first; SIGKILL to whatever is still running after ``timeout`` seconds.
    ``group`` says whether the process was started with ``start_new_session=True``
    (then the signals go to its whole group, so children it forked stop too); ``None``
    finds out from the running process. Returns the process's exit status.
    """
    pgid = process.pid if _leads_group(process, group) else None
    _signal(process, pgid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal(process, pgid, signal.SIGKILL)
        process.wait()
    if pgid is not None:  # the leader is gone; its children may ignore SIGTERM
        deadline = time.monotonic() + timeout
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _group_alive(pgid):
            _killpg(pgid, signal.SIGKILL)
    return int(process.returncode)


def _leads_group(process: subprocess.Popen[bytes], group: bool | None) -> bool:
    if not hasattr(os, "killpg"):
        return False
    if group is not None:
        return group
    try:
        return os.getpgid(process.pid) == process.pid
    except ProcessLookupError:  # already reaped: nothing tells us any more
        return False


def _signal(process: subprocess.Popen[bytes], pgid: int | None, sig: signal.Signals) -> None:
    if pgid is not None:
        _killpg(pgid, sig)
    elif process.poll() is None:
        process.send_signal(sig)


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process with that group exists but is not ours
        return True
    return True


@dataclass(frozen=True)
class RunningServer:
    """A server started by :func:`running`: its process and where its output goes."""

    process: subprocess.Popen[bytes]
    output: IO[bytes]

    @property
    def pid(self) -> int:
        """The server's process id (also its process group id)."""
        return self.process.pid

    def output_tail(
        self, lines: int = TAIL_LINES, select: Callable[[str], bool] | None = None
    ) -> str:
        """The end of the server's output so far (see :func:`output_tail`)."""
        return output_tail(self.output, lines, select)


@contextmanager
def running(
    command: Sequence[str],
    ready: ReadyCheck,
    *,
    timeout: float = READY_TIMEOUT_SECONDS,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    stop_timeout: float = STOP_TIMEOUT_SECONDS,
    select: Callable[[str], bool] | None = None,
) -> Iterator[RunningServer]:
    """Start ``command``, wait until ``ready``, yield it, and always stop it.

    The process starts in a new session (its own process group) with stdin closed and
    stdout and stderr captured in a temporary file; when the block ends, however it ends,
    :func:`stop` ends the whole group, children included.

    Args:
        command: the server's command line.
        ready: see :func:`wait_until_ready`.
        timeout: seconds to wait for ``ready``.
        env: the complete environment (default: this process's).
        cwd: the working directory.
        stop_timeout: seconds between SIGTERM and SIGKILL.
        select: which output lines an error quotes first (a server's error lines).

    Raises:
        ServerError: the server exited or was not ready in time (nothing is left running).
    """
    with tempfile.TemporaryFile(prefix="mlgen-server-") as output:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=True,
        )
        try:
            wait_until_ready(ready, timeout, process=process, output=output, select=select)
            yield RunningServer(process, output)
        finally:
            stop(process, stop_timeout, group=True)
