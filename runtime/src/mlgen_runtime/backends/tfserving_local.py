"""LOCAL ONLY: run a real ``tensorflow_model_server`` on loopback, for smoke tests and tests.

A deployed TF Serving is the official ``tensorflow/serving`` image. TF Serving is a C++
server: no PyPI or Debian package provides it, so a machine runs it only where the binary
is on ``PATH`` or named by ``$TFSERVING_BINARY``; :func:`find_binary` says which, or why
there is none (callers then fall back to TensorFlow's own SavedModel loader).

Usage::

    from mlgen_runtime.backends import tfserving_local

    binary, source = tfserving_local.find_binary("tensorflow/serving:2.20.0")
    with tfserving_local.running(binary, Path("tfserving"), models_dir, "churn") as url:
        ...  # url is http://127.0.0.1:<port>; POST {url}/v1/models/churn:predict

The server gets the repository's ``monitoring.config`` and ``batching.config`` and a copy
of its ``models.config`` whose ``base_path`` is ``models_dir/<model>`` (needs
``protobuf`` and ``tensorflow-serving-api``, as :mod:`.tfserving_config` does).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlgen_runtime import process
from mlgen_runtime.backends import tfserving_config

HOST = process.HOST
BINARY_ENV = "TFSERVING_BINARY"
SERVER_BINARY = "tensorflow_model_server"
READY_TIMEOUT_SECONDS = 60.0
ServerError = process.ServerError


def find_binary(image: str = "tensorflow/serving") -> tuple[str | None, str]:
    """The TF Serving binary to run and where it was found, or ``None`` and why there is
    none (``image`` is named in that reason: where the binary does ship)."""
    configured = os.environ.get(BINARY_ENV, "").strip()
    if configured:
        found = shutil.which(configured)
        if found:
            return found, f"${BINARY_ENV}"
        return None, f"${BINARY_ENV}={configured!r} is not an executable"
    found = shutil.which(SERVER_BINARY)
    if found:
        return found, "PATH"
    return None, (
        f"no {SERVER_BINARY} on PATH and ${BINARY_ENV} is unset. TF Serving is a C++ "
        f"server shipped in the {image} image (and Google's own apt repository); no "
        "PyPI or Debian package provides it"
    )


def local_models_config(config_dir: Path, models_dir: Path, folder: Path) -> Path:
    """``config_dir``'s ``models.config`` with every ``base_path`` at ``models_dir/<model>``,
    written to ``folder``; returns its path."""
    from google.protobuf import text_format

    config = tfserving_config.read_model_server_config(config_dir / tfserving_config.MODELS_CONFIG)
    for model in config.model_config_list.config:
        model.base_path = str((models_dir / model.name).resolve())
    path = folder / tfserving_config.MODELS_CONFIG
    path.write_text(text_format.MessageToString(config), encoding="utf-8")
    return path


def model_available(base_url: str, model_name: str) -> bool:
    """Whether a version of ``model_name`` is AVAILABLE (``GET /v1/models/<name>``)."""
    try:
        status = json.loads(process.read_text(f"{base_url}/v1/models/{model_name}", timeout=2))
    except ValueError:  # not JSON (yet)
        return False
    states = [version.get("state") for version in status.get("model_version_status", [])]
    return "AVAILABLE" in states


@contextmanager
def running(
    binary: str,
    config_dir: Path,
    models_dir: Path,
    model_name: str,
    timeout: float = READY_TIMEOUT_SECONDS,
) -> Iterator[str]:
    """Serve ``models_dir`` with ``config_dir``'s configs on free loopback ports until the
    block ends; yield the REST base URL once ``model_name`` is available.

    Raises:
        ServerError: the server exited or was not ready in time (with its last output).
    """
    grpc_port, http_port = process.free_ports(2, HOST)
    base_url = f"http://{HOST}:{http_port}"
    with tempfile.TemporaryDirectory(prefix="tfserving-") as scratch:
        command = [
            binary,
            f"--port={grpc_port}",
            f"--rest_api_port={http_port}",
            f"--model_config_file={local_models_config(config_dir, models_dir, Path(scratch))}",
            f"--monitoring_config_file={config_dir / tfserving_config.MONITORING_CONFIG}",
            "--enable_batching=true",
            f"--batching_parameters_file={config_dir / tfserving_config.BATCHING_CONFIG}",
        ]
        with process.running(
            command, lambda: model_available(base_url, model_name), timeout=timeout
        ):
            yield base_url
