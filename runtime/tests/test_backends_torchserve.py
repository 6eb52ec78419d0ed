"""mlgen_runtime.backends.torchserve without TorchServe: configs, health answers, the CLI.

TorchServe itself (Java frontend, Python workers) serves a real archive in the
TorchServe backend's generated suite (slow tier), through the same module."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from mlgen_runtime import process
from mlgen_runtime.backends import torchserve

PRODUCTION = """\
# the container's
inference_address=http://0.0.0.0:8080
management_address=http://0.0.0.0:8081
metrics_address=http://0.0.0.0:8082
disable_token_authorization=false
model_store=/home/model-server/model-store
load_models=churn.mar
metrics_config=/home/model-server/metrics.yaml
vmargs=-XX:+UseContainerSupport \\
    -XX:MaxRAMPercentage=50.0
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "metrics.yaml").write_text("dimensions: []\n")
    path = tmp_path / "config.properties"
    path.write_text(PRODUCTION)
    return path


def test_properties_are_read_as_torchserve_reads_them(config: Path, tmp_path: Path) -> None:
    properties = torchserve.read_properties(config)
    assert properties["inference_address"] == "http://0.0.0.0:8080"
    assert properties["vmargs"] == "-XX:+UseContainerSupport -XX:MaxRAMPercentage=50.0"
    assert "# the container's" not in properties
    written = tmp_path / "copy.properties"
    torchserve.write_properties(written, properties)
    assert torchserve.read_properties(written) == properties


@pytest.mark.parametrize(
    ("load_models", "names"),
    [("churn.mar", ["churn"]), ("a=x.mar, b.mar", ["a", "b"]), ("all", []), ("", [])],
)
def test_model_names(load_models: str, names: list[str]) -> None:
    assert torchserve.model_names({"load_models": load_models}) == names


def test_loopback_config_rewrites_ports_and_paths(config: Path, tmp_path: Path) -> None:
    local = torchserve.loopback_config(config, tmp_path / "store")
    ports = {local[key].rsplit(":", 1)[1] for key in torchserve.ADDRESS_KEYS}
    ports |= {local["grpc_inference_port"], local["grpc_management_port"]}
    assert len(ports) == 5 and "8080" not in ports
    assert all(local[key].startswith("http://127.0.0.1:") for key in torchserve.ADDRESS_KEYS)
    assert local["model_store"] == str(tmp_path / "store") and "load_models" not in local
    # the container's metrics_config does not exist here: the file beside the config does
    assert Path(local["metrics_config"]) == (tmp_path / "metrics.yaml").resolve()
    assert local["disable_token_authorization"] == "false"  # kept from the base


def test_ready_workers() -> None:
    answer = [{"workers": [{"status": "READY"}, {"status": "UNLOADING"}]}, "junk"]
    assert torchserve.ready_workers(answer) == 1
    assert torchserve.ready_workers({"code": 404}) == 0


def test_the_server_of_a_config(config: Path, tmp_path: Path) -> None:
    server = torchserve.TorchServe.from_config(config, tmp_path / "work")
    assert server.model_name == "churn" and server.token_auth
    assert server.url("inference") == "http://127.0.0.1:8080"
    assert server.token("inference") is None  # no key file yet
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / torchserve.KEY_FILE).write_text(json.dumps({"inference": {"key": "k"}}))
    assert server.token("inference") == "k"
    config.write_text(PRODUCTION.replace("load_models=churn.mar", ""))
    with pytest.raises(torchserve.ServerError, match="names no model"):
        torchserve.TorchServe.from_config(config, tmp_path)


def test_health_answers_503_with_the_reason_while_torchserve_does_not_run(
    config: Path, tmp_path: Path
) -> None:
    server = torchserve.TorchServe.from_config(config, tmp_path)
    health = torchserve.health_server(server, process.free_port(), process.HOST)
    threading.Thread(target=health.serve_forever, daemon=True).start()
    base = f"http://{process.HOST}:{health.server_address[1]}"
    try:
        assert torchserve.http(f"{base}/ready") == (503, {"status": "not ok", "reason": "stopped"})
        status, body = torchserve.http(f"{base}/live")
        assert status == 503 and body["reason"] == "TorchServe is not running"
        assert torchserve.http(f"{base}/other")[0] == 404
    finally:
        health.shutdown()
        health.server_close()


def test_waiting_for_a_server_that_was_not_started_fails(config: Path, tmp_path: Path) -> None:
    with pytest.raises(torchserve.ServerError, match="not started"):
        torchserve.TorchServe.from_config(config, tmp_path).wait_until_ready(1)


def test_the_command_refuses_a_missing_archive(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["--config", str(config), "--model-store", str(tmp_path / "none")]
    with pytest.raises(SystemExit) as exited:
        torchserve.main([*arguments, "--workdir", str(tmp_path / "work")])
    assert exited.value.code == 2
    assert "churn.mar does not exist" in capsys.readouterr().err
