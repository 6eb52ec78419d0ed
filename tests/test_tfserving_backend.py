"""The TF Serving backend plugin: its definitions, what it renders, and its checks.

``tfserving-config`` parses ``tfserving/*.config`` with TF Serving's own message types
(``ModelServerConfig`` from tensorflow-serving-api) and compares them with the image's
server command; ``tfserving-savedmodel`` trains and exports with the repository's code and
reads the SavedModel as TF Serving does. Both run in the generated repository's
environment (TensorFlow, tensorflow-serving-api): slow tier. Each breaking test edits a
copy of a rendered repository and runs only that check through ``mlgen check``'s runner:
a misspelled field, a wrong platform or base path, Prometheus off, invalid batching, a
server command that disagrees with the files, and a SavedModel without
``serving_default`` must each fail with the reason (a check that cannot fail proves
nothing).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from mlgen import CheckResult
from mlgen.check_runner import collect_checks, run_checks
from mlgen.environments import run_in_repo
from mlgen.plugins import get_registry
from tests.conftest import BuiltRepos
from tests.rendering import render

CHECKS = ("tfserving-config", "tfserving-savedmodel")
DEPLOYMENT = "deploy/k8s/base/deployment/deployment.yaml"


def run_check(repo: Path, name: str) -> CheckResult:
    results = {check.name: result for check, result in run_checks(repo, only=(name,))}
    assert set(results) == {name}, f"the {name} check is not registered"
    return results[name]


# ------------------------------------------------------------------ definitions
@pytest.mark.parametrize(("name", "gpus"), [("tfserving", 0), ("tfserving-gpu", 1)])
def test_backends_are_registered(name: str, gpus: int) -> None:
    backend = get_registry().get_backend(name).backend
    container = backend.container
    assert backend.export_format == "savedmodel"
    suffix = "-gpu" if gpus else ""
    assert re.fullmatch(rf"tensorflow/serving:\d+\.\d+\.\d+{suffix}", container.base_image)
    assert {port.name: port.container_port for port in container.ports} == {
        "grpc": 8500,
        "http": 8501,
    }
    assert (container.readiness.path, container.readiness.port) == (
        "/v1/models/{model_name}/metadata",
        "http",
    )
    assert (container.liveness.path, container.liveness.port) == ("/v1/models/{model_name}", "http")
    assert (container.metrics_port, container.metrics_path) == (
        "http",
        "/monitoring/prometheus/metrics",
    )
    assert container.resources.gpus == gpus
    assert container.command[0] == "tensorflow_model_server"
    assert "--model_config_file=/models/models.config" in container.command
    assert "--monitoring_config_file=/models/monitoring.config" in container.command
    assert ":tensorflow:serving:request_count" in backend.metrics.error_rate
    assert ":tensorflow:serving:request_latency_count" in backend.metrics.request_rate
    assert ":tensorflow:serving:request_latency_bucket" in backend.metrics.latency_quantile
    assert backend.metrics.latency_quantile.endswith("/ 1e6")  # microseconds -> seconds
    version = container.base_image.split(":")[1].removesuffix("-gpu")
    minor = ".".join(version.split(".")[:2])
    for package in ("tensorflow", "tensorflow-serving-api"):
        assert f"{package}>={minor},<" in " ".join(backend.dependencies), package


@pytest.mark.parametrize(("backend", "gpu_request"), [("tfserving", None), ("tfserving-gpu", "1")])
def test_rendered_files_follow_the_model_name_and_gpu_choice(
    template_root: Path, tmp_path: Path, backend: str, gpu_request: str | None
) -> None:
    repo = render(
        template_root, tmp_path / "repo", serving_backend=backend, model_name="fraud-score"
    )
    models_config = (repo / "tfserving/models.config").read_text()
    assert 'name: "fraud-score"' in models_config
    assert 'base_path: "/models/fraud-score"' in models_config
    assert 'model_platform: "tensorflow"' in models_config
    assert "enable: true" in (repo / "tfserving/monitoring.config").read_text()
    deployment = yaml.safe_load((repo / DEPLOYMENT).read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models/fraud-score/metadata"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v1/models/fraud-score"
    assert container["resources"]["limits"].get("nvidia.com/gpu") == gpu_request
    dockerfile = (repo / "Dockerfile").read_text()
    image = get_registry().get_backend(backend).backend.container.base_image
    assert f"FROM {image}\n" in dockerfile
    assert (
        "COPY artifacts/models/fraud-score/1/ /models/fraud-score/${MODEL_VERSION}/" in dockerfile
    )
    # HEALTHCHECK on the liveness endpoint (docs/plugins.md, "The HEALTHCHECK rule")
    assert '"http://127.0.0.1:8501/v1/models/fraud-score"]' in dockerfile
    assert "USER 10001:10001" in dockerfile
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.MULTILINE)
    assert entrypoint and json.loads(entrypoint.group(1))[0] == "tensorflow_model_server"
    assert "!artifacts/models/fraud-score/1/" in (repo / ".dockerignore").read_text()
    assert "fraud_score.serving.client" in (repo / "docs/serving.md").read_text()


def test_the_checks_are_registered_for_tfserving_repositories_only(
    template_root: Path, tmp_path: Path
) -> None:
    names = {
        backend: {
            check.name
            for check in collect_checks(
                render(template_root, tmp_path / backend, serving_backend=backend)
            )
        }
        for backend in ("fastapi", "tfserving", "tfserving-gpu")
    }
    assert not set(CHECKS) & names["fastapi"]
    assert set(CHECKS) <= names["tfserving"] and set(CHECKS) <= names["tfserving-gpu"]


# ------------------------------------------------------------------ the checks, for real
@pytest.fixture(scope="module")
def tfserving_repo(built_repos: BuiltRepos) -> Path:
    repo, _ = built_repos.get("tfserving")  # renders once and builds its environment
    return repo


@pytest.fixture
def repo_copy(tfserving_repo: Path, tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(tfserving_repo, repo, ignore=shutil.ignore_patterns("artifacts", "__pycache__"))
    return repo


@pytest.mark.slow
def test_the_rendered_repository_passes_both_checks(tfserving_repo: Path) -> None:
    config = run_check(tfserving_repo, "tfserving-config")
    assert config.ok, config.detail
    assert "ModelServerConfig serves 'demo-model' from /models/demo-model" in config.detail
    saved = run_check(tfserving_repo, "tfserving-savedmodel")
    assert saved.ok, saved.detail
    assert "serving_default takes the 6 features (float32 [batch])" in saved.detail
    assert "equal to the in-process model's" in saved.detail


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "old", "new", "reason"),
    [
        pytest.param(
            "tfserving/models.config",
            "model_platform:",
            "model_platfrom:",
            'has no field named "model_platfrom"',
            id="unknown-field",
        ),
        pytest.param(
            "tfserving/models.config",
            'model_platform: "tensorflow"',
            'model_platform: "pytorch"',
            "model_platform is 'pytorch', a SavedModel is served by platform 'tensorflow'",
            id="wrong-platform",
        ),
        pytest.param(
            "tfserving/models.config",
            'base_path: "/models/demo-model"',
            'base_path: "/srv/demo-model"',
            "base_path is '/srv/demo-model'",
            id="wrong-base-path",
        ),
        pytest.param(
            "tfserving/monitoring.config",
            "enable: true",
            "enable: false",
            "prometheus_config { enable: true } is needed",
            id="prometheus-off",
        ),
        pytest.param(
            "tfserving/monitoring.config",
            'path: "/monitoring/prometheus/metrics"',
            'path: "/metrics"',
            "Prometheus path '/metrics', the deployment scrapes '/monitoring/prometheus/metrics'",
            id="metrics-path",
        ),
        pytest.param(
            "tfserving/batching.config",
            "max_batch_size { value: 64 }",
            "max_batch_size { value: 0 }",
            "max_batch_size must be at least 1",
            id="batching",
        ),
        pytest.param(
            "Dockerfile",
            '"--rest_api_port=8501"',
            '"--rest_api_port=8502"',
            "--rest_api_port is '8502', expected 8501",
            id="server-port",
        ),
        pytest.param(
            "Dockerfile",
            '"--model_config_file=/models/models.config"',
            '"--model_config_file=/models/model.config"',
            "--model_config_file is '/models/model.config'",
            id="config-file-flag",
        ),
    ],
)
def test_a_broken_config_fails_the_check(
    repo_copy: Path, path: str, old: str, new: str, reason: str
) -> None:
    target = repo_copy / path
    text = target.read_text(encoding="utf-8")
    assert old in text
    target.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = run_check(repo_copy, "tfserving-config")
    assert not result.ok
    assert reason in result.detail, result.detail


WRONG_SAVEDMODEL = """
import sys
import tensorflow as tf
from demo_model.features import FEATURE_NAMES
names, signature = list(FEATURE_NAMES), sys.argv[2]
if sys.argv[3] == "renamed":
    names[-1] = "renamed"
specs = [tf.TensorSpec([None], tf.float32, name=name) for name in names]
@tf.function(input_signature=specs)
def serve(*columns):
    return {"probability": tf.sigmoid(tf.add_n(list(columns)))}
module = tf.Module()
module.serve = serve
tf.saved_model.save(module, sys.argv[1], signatures={signature: serve})
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signature", "inputs", "reason"),
    [
        ("predict", "features", "no 'serving_default' signature (found ['predict'])"),
        ("serving_default", "renamed", "serving_default inputs are"),
    ],
    ids=["no-serving-default", "other-inputs"],
)
def test_a_wrong_savedmodel_fails_the_check(
    repo_copy: Path, built_repos: BuiltRepos, signature: str, inputs: str, reason: str
) -> None:
    _, environment = built_repos.get("tfserving")
    version = repo_copy / "artifacts" / "models" / "demo-model" / "1"
    made = run_in_repo(
        repo_copy,
        environment,
        ["python", "-c", WRONG_SAVEDMODEL, str(version), signature, inputs],
        extra_env={"TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert made.returncode == 0, made.stderr[-2000:]
    result = run_check(repo_copy, "tfserving-savedmodel")
    assert not result.ok
    assert "artifacts/models (retrain it)" in result.detail, result.detail
    assert reason in result.detail, result.detail
