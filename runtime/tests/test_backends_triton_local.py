"""mlgen_runtime.backends.triton_local without a tritonserver: what it reports and runs.

The server itself runs in the Triton backend's generated suite (slow tier), where the
``nvidia-pytriton`` wheel is installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mlgen_runtime.backends import triton_local


@pytest.mark.skipif(importlib.util.find_spec("pytriton") is not None, reason="pytriton here")
def test_no_pytriton_is_reported_with_the_install_command() -> None:
    with pytest.raises(triton_local.ServerUnavailable, match="pip install 'nvidia-pytriton"):
        triton_local.find_distribution()


def test_the_command_listens_on_loopback_only(tmp_path: Path) -> None:
    distribution = triton_local.TritonDistribution(
        tmp_path / "tritonserver", tmp_path / "python", tmp_path / "stub", (), "test build"
    )
    server = triton_local.RunningServer(8000, 8001, 8002, "test build")
    command = triton_local.server_command(distribution, tmp_path / "repo", tmp_path, server)
    addresses = [part for part in command if "-address=" in part]
    assert addresses == [f"--{kind}-address=127.0.0.1" for kind in ("http", "grpc", "metrics")]
    assert f"--model-repository={tmp_path / 'repo'}" in command
    assert "--exit-on-error=true" in command
    assert server.http_url == "127.0.0.1:8000"
    assert server.metrics_url == "http://127.0.0.1:8002/metrics"


@pytest.mark.parametrize(
    ("line", "quoted"),
    [
        ("E1203 17:01:02.123 model_lifecycle.cc:654] failed to load 'churn'", True),
        ("| churn | 1 | UNAVAILABLE: Internal: ModelLoadError |", True),
        ("error: creating server: Internal - failed to load all models", True),
        ("E1203 17:01:02.123 CudaDriverHelper: no CUDA driver", False),
        ("I1203 17:01:02.123 server.cc:676] Started HTTPService", False),
    ],
)
def test_error_lines_are_quoted_first(line: str, quoted: bool) -> None:
    assert triton_local.is_error_line(line) is quoted
