"""LOCAL ONLY: run a real tritonserver on loopback, for smoke tests and serving tests.

A deployed Triton is the official image. Where there is no Docker and no GPU, the
``nvidia-pytriton`` wheel (Linux only) still carries a tritonserver binary and its python
backend, which start on a CPU. That build has no ``onnxruntime`` backend, so it serves a
python-backend twin of the model repository (same model name, tensors and batching, the
same ``model.onnx`` run by ONNX Runtime).

Usage::

    from mlgen_runtime.backends import triton_local
    from mlgen_runtime.inference_client import InferenceClient

    with triton_local.running(repository) as server:
        client = InferenceClient(f"http://{server.http_url}", "my-model")

:func:`find_distribution` raises :class:`ServerUnavailable` (with the reason) when no
tritonserver can run here; callers fall back or skip.

Facts of that build handled here: the python-backend stub embeds libpython
(``LD_LIBRARY_PATH`` gets this interpreter's library folder) and starts the first
``python3`` on ``PATH`` in isolated mode, so the model sees that environment's numpy and
onnxruntime. The stub reads string (``BYTES``) tensors only with numpy 1, while this
environment may need numpy 2 (Feast does): :func:`prepare_model_environment` (``python -m
mlgen_runtime.backends.triton_local prepare``) builds, once, a small environment with
:data:`MODEL_REQUIREMENTS` inside this one (:func:`model_environment`), whose ``bin``
then goes first on the server's ``PATH``; without it this environment's ``bin`` does,
and numeric tensors still work.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlgen_runtime import process

HOST = process.HOST
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
MODEL_ENVIRONMENT = "triton-models"
"""The folder, inside the active environment, of the models' own environment."""
MODEL_REQUIREMENTS = ("numpy>=1.26,<2", "onnxruntime>=1.18")
"""What the python-backend twin imports, with the numpy its stub reads strings with."""
_COMPLETE = ".mlgen-complete"
ServerError = process.ServerError
"""The tritonserver started but exited or did not get ready (the message ends with its log)."""


class ServerUnavailable(RuntimeError):
    """No tritonserver can run on this machine (the message says why)."""


@dataclass(frozen=True)
class TritonDistribution:
    """A tritonserver build: its binary, its python backend and the libraries it needs."""

    binary: Path
    python_backend: Path
    stub: Path
    library_dirs: tuple[Path, ...]
    source: str


@dataclass(frozen=True)
class RunningServer:
    """A started server's addresses."""

    http_port: int
    grpc_port: int
    metrics_port: int
    source: str

    @property
    def http_url(self) -> str:
        """``host:port`` of the HTTP/REST (KServe v2) endpoint, as tritonclient wants it."""
        return f"{HOST}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        """The Prometheus endpoint."""
        return f"http://{HOST}:{self.metrics_port}/metrics"


def find_distribution() -> TritonDistribution:
    """The tritonserver of the installed ``nvidia-pytriton`` wheel.

    Raises:
        ServerUnavailable: not Linux, ``nvidia-pytriton`` is not installed, it has no
            python-backend stub for this Python, or this Python has no shared libpython.
    """
    if sys.platform != "linux":
        raise ServerUnavailable(
            f"the pytriton tritonserver is built for Linux, this is {sys.platform}"
        )
    spec = importlib.util.find_spec("pytriton")  # located, not imported
    if spec is None or not spec.submodule_search_locations:
        raise ServerUnavailable(
            "nvidia-pytriton is not installed (pip install 'nvidia-pytriton>=0.5.7,<0.6', "
            "part of the dev extra on Linux)"
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    root = package / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    distribution = TritonDistribution(
        binary=root / "bin" / "tritonserver",
        python_backend=root / "backends" / "python",
        stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
        library_dirs=(package.parent / "nvidia_pytriton.libs", *_python_library_dirs()),
        source=f"nvidia-pytriton tritonserver ({platform.machine()}, Python {version} stub)",
    )
    for path in (distribution.binary, distribution.python_backend, distribution.stub):
        if not path.exists():
            raise ServerUnavailable(f"the nvidia-pytriton install lacks {path}")
    return distribution


def _python_library_dirs() -> tuple[Path, ...]:
    """Where this interpreter's libpython is (the python-backend stub links to it)."""
    library = sysconfig.get_config_var("LDLIBRARY") or ""
    folder = Path(sysconfig.get_config_var("LIBDIR") or sys.base_prefix)
    if not sysconfig.get_config_var("Py_ENABLE_SHARED") or not (folder / library).exists():
        raise ServerUnavailable(
            f"this Python ({sys.base_prefix}) has no shared libpython, which the "
            "python-backend stub needs"
        )
    return (folder,)


def _backends_folder(distribution: TritonDistribution, workdir: Path) -> Path:
    """A backend directory whose python backend has the stub for this Python."""
    backends = workdir / "backends"
    python = backends / "python"
    shutil.copytree(distribution.python_backend, python)
    shutil.copy2(distribution.stub, python / "triton_python_backend_stub")
    return backends


def model_environment(prefix: Path | None = None) -> Path:
    """Where the models' environment of the active environment (or ``prefix``) is."""
    return Path(prefix or sys.prefix) / MODEL_ENVIRONMENT


def has_model_environment(prefix: Path | None = None) -> bool:
    """Whether :func:`prepare_model_environment` completed for this environment."""
    return (model_environment(prefix) / _COMPLETE).is_file()


def prepare_model_environment(prefix: Path | None = None) -> Path:
    """Build the models' environment once (``venv`` and ``pip``, from the package index
    pip is configured with) and return it; quick when it is complete.

    Raises:
        RuntimeError: ``venv`` or ``pip`` failed (the message ends with their output).
    """
    target = model_environment(prefix)
    if has_model_environment(prefix):
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    python = partial / "bin" / "python"
    for command in (
        [sys.executable, "-m", "venv", str(partial)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         *MODEL_REQUIREMENTS],
    ):  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"{' '.join(command[:4])} failed: {' | '.join(tail)}")
    (partial / _COMPLETE).write_text("\n".join(MODEL_REQUIREMENTS) + "\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def _environment(distribution: TritonDistribution) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONHOME"}
    libraries = [str(folder) for folder in distribution.library_dirs]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [*libraries, env.get("LD_LIBRARY_PATH")]))
    first = [str(Path(sys.executable).parent)]
    if has_model_environment():
        first.insert(0, str(model_environment() / "bin"))
    env["PATH"] = os.pathsep.join(filter(None, [*first, env.get("PATH")]))
    return env


def server_command(
    distribution: TritonDistribution, repository: Path, backends: Path, server: RunningServer
) -> list[str]:
    """The tritonserver command line: loopback only, the flags of the image's CMD."""
    return [
        str(distribution.binary),
        f"--model-repository={repository}",
        f"--backend-directory={backends}",
        "--model-control-mode=none",
        "--disable-auto-complete-config",
        "--strict-readiness=true",
        "--exit-on-error=true",
        f"--http-address={HOST}",
        f"--http-port={server.http_port}",
        f"--grpc-address={HOST}",
        f"--grpc-port={server.grpc_port}",
        f"--metrics-address={HOST}",
        f"--metrics-port={server.metrics_port}",
        "--allow-gpu-metrics=false",
        "--metrics-config=summary_latencies=true",
        "--exit-timeout-secs=5",
        "--log-verbose=0",
    ]


def is_error_line(line: str) -> bool:
    """A tritonserver log line worth quoting: ``E<date>`` records, UNAVAILABLE, ``error:``."""
    stripped = line.strip()
    glog_error = stripped[:1] == "E" and stripped[1:2].isdigit()
    return (
        (glog_error and "CudaDriverHelper" not in stripped)
        or "UNAVAILABLE" in stripped
        or stripped.startswith("error:")
    )


@contextmanager
def running(repository: Path, timeout: float = READY_TIMEOUT_SECONDS) -> Iterator[RunningServer]:
    """Run tritonserver on ``repository`` (loopback, free ports) until the block ends.

    The server, and every process it started, is stopped however the block ends.

    Raises:
        ServerUnavailable: no tritonserver can run here (nothing was started).
        ServerError: it started but did not get ready; the message ends with its log.
    """
    distribution = find_distribution()
    http_port, grpc_port, metrics_port = process.free_ports(3)
    server = RunningServer(http_port, grpc_port, metrics_port, distribution.source)
    with tempfile.TemporaryDirectory(prefix="tritonserver-") as scratch:
        backends = _backends_folder(distribution, Path(scratch))
        command = server_command(distribution, Path(repository).resolve(), backends, server)
        with process.running(
            command,
            f"http://{server.http_url}/v2/health/ready",
            timeout=timeout,
            env=_environment(distribution),
            cwd=scratch,
            stop_timeout=STOP_TIMEOUT_SECONDS,
            select=is_error_line,
        ):
            yield server


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mlgen_runtime.backends.triton_local prepare``: build the models'
    environment of the active one (see :func:`prepare_model_environment`)."""
    parser = argparse.ArgumentParser(prog="python -m mlgen_runtime.backends.triton_local")
    parser.add_argument("command", choices=["prepare"])
    parser.parse_args(argv)
    try:
        print(prepare_model_environment())
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
