"""mlgen_runtime.backends.tfserving_config and tfserving_local without a TF Serving binary.

``models.config`` needs tensorflow-serving-api (installed in TF Serving repositories,
whose generated suite also starts the real server where its binary is on PATH)."""

from __future__ import annotations

from pathlib import Path

import pytest
from http_support import JsonHandler, loopback_server

from mlgen_runtime.backends import tfserving_config, tfserving_local

MODELS = """model_config_list {
  config { name: "churn" base_path: "/models/churn" model_platform: "tensorflow"
           model_version_policy { latest { num_versions: 1 } } }
}
"""
MONITORING = 'prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }\n'
BATCHING = "max_batch_size { value: 64 }\nallowed_batch_sizes: 8\nallowed_batch_sizes: 64\n"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    for name, text in (("models.config", MODELS), ("monitoring.config", MONITORING)):
        (tmp_path / name).write_text(text)
    (tmp_path / "batching.config").write_text(BATCHING)
    return tmp_path


def test_monitoring_and_batching_parse_with_the_transcribed_schemas(config_dir: Path) -> None:
    monitoring = tfserving_config.read_monitoring_config(config_dir / "monitoring.config")
    tfserving_config.check_monitoring(monitoring)
    with pytest.raises(tfserving_config.ConfigError, match="Prometheus scrapes '/other'"):
        tfserving_config.check_monitoring(monitoring, "/other")
    batching = tfserving_config.read_batching_parameters(config_dir / "batching.config")
    tfserving_config.check_batching(batching)
    assert list(batching.allowed_batch_sizes) == [8, 64]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_batch_size { value: 0 }\n", "max_batch_size must be at least 1"),
        ("allowed_batch_sizes: 64\nallowed_batch_sizes: 8\n", "must increase"),
        ("max_batch_sise { value: 8 }\n", r"batching.config:1:1"),
    ],
)
def test_a_broken_batching_config_is_reported(config_dir: Path, text: str, message: str) -> None:
    (config_dir / "batching.config").write_text(text)
    with pytest.raises(tfserving_config.ConfigError, match=message):
        tfserving_config.check_batching(
            tfserving_config.read_batching_parameters(config_dir / "batching.config")
        )


def test_the_models_config_serves_the_named_model(config_dir: Path) -> None:
    pytest.importorskip("tensorflow_serving")
    assert tfserving_config.problems(config_dir, "churn") == []
    assert "must serve exactly 'other'" in tfserving_config.problems(config_dir, "other")[0]


def test_versions_to_serve_follow_the_policy(config_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorflow_serving")
    for version in ("1", "3", "12", "notes"):
        (tmp_path / "store" / version).mkdir(parents=True)
    config = tfserving_config.read_model_server_config(config_dir / "models.config")
    served = tfserving_config.served_model(config, "churn")
    assert tfserving_config.versions_to_serve(served, tmp_path / "store") == [12]


def test_no_binary_is_reported_with_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tfserving_local.BINARY_ENV, "/nonexistent/tensorflow_model_server")
    binary, reason = tfserving_local.find_binary("tensorflow/serving:2.20.0")
    assert binary is None and "is not an executable" in reason
    monkeypatch.delenv(tfserving_local.BINARY_ENV)
    monkeypatch.setenv("PATH", "/nonexistent")
    binary, reason = tfserving_local.find_binary("tensorflow/serving:2.20.0")
    assert binary is None and "tensorflow/serving:2.20.0 image" in reason


def test_model_available_reads_tf_servings_status() -> None:
    answers = {"/v1/models/churn": {"model_version_status": [{"state": "AVAILABLE"}]},
               "/v1/models/loading": {"model_version_status": [{"state": "LOADING"}]}}  # fmt: skip

    class Status(JsonHandler):
        def do_GET(self) -> None:
            self.answer(200 if self.path in answers else 404, answers.get(self.path, {}))

    with loopback_server(Status) as url:
        assert tfserving_local.model_available(url, "churn")
        assert not tfserving_local.model_available(url, "loading")
        with pytest.raises(OSError):
            tfserving_local.model_available(url, "unknown")  # 404: not listening for it yet
