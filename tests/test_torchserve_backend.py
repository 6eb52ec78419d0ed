"""The TorchServe backend plugin: its definition, and its checks fail on broken input.

The config check is fast (no environment); the archive check runs torch-model-archiver
in the generated repository's environment, so its tests are in the slow tier.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from mlgen_torchserve import BACKEND, BACKENDS, GPU_BACKEND
from mlgen_torchserve.checks import PropertiesError, parse_properties

from mlgen import CheckResult
from mlgen.check_runner import run_checks
from mlgen.plugins import get_registry
from tests.rendering import render

PRODUCTION = "serving/config.properties"
LOCAL = "serving/config.local.properties"
METRICS = "serving/metrics.yaml"
HANDLER = "src/demo_model/serving/handler.py"


@pytest.fixture(scope="module")
def rendered(template_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(
        template_root, tmp_path_factory.mktemp("torchserve") / "repo", serving_backend="torchserve"
    )


@pytest.fixture
def repo(rendered: Path, tmp_path: Path) -> Path:
    """A copy of the rendered repository that a test may break."""
    return Path(shutil.copytree(rendered, tmp_path / "repo"))


def run_one(repo: Path, name: str) -> CheckResult:
    results = [result for check, result in run_checks(repo, only=(name,))]
    assert len(results) == 1, f"{name} was not registered"
    return results[0]


def edit(repo: Path, path: str, change: Callable[[str], str]) -> None:
    target = repo / path
    before = target.read_text(encoding="utf-8")
    after = change(before)
    assert after != before, f"the edit of {path} changed nothing"
    target.write_text(after, encoding="utf-8")


# ------------------------------------------------------------------ the backends
def test_both_backends_are_registered() -> None:
    registry = get_registry()
    for name, backend in BACKENDS.items():
        assert registry.get_backend(name).backend == backend
    assert BACKEND.export_format == GPU_BACKEND.export_format == "torchscript"
    assert BACKEND.container.resources.gpus == 0 and GPU_BACKEND.container.resources.gpus == 1
    assert BACKEND.container.base_image == "pytorch/torchserve:0.12.0-cpu"
    assert GPU_BACKEND.container.base_image == "pytorch/torchserve:0.12.0-gpu"
    assert "torch==2.13.0" in BACKEND.dependencies and "pyyaml>=6.0" in BACKEND.dependencies
    ports = {port.name: port.container_port for port in BACKEND.container.ports}
    assert ports == {"http": 8080, "management": 8081, "metrics": 8082, "health": 8083}


def test_the_gpu_variant_requests_a_gpu(template_root: Path, tmp_path: Path) -> None:
    repo = render(template_root, tmp_path / "gpu", serving_backend="torchserve-gpu")
    deployment = yaml.safe_load(
        (repo / "deploy/k8s/base/deployment/deployment.yaml").read_text(encoding="utf-8")
    )
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "FROM pytorch/torchserve:0.12.0-gpu" in (repo / "Dockerfile").read_text()


def test_the_rendered_repository_passes_the_config_check(rendered: Path) -> None:
    result = run_one(rendered, "torchserve-config")
    assert result.ok, result.detail
    assert "production token auth on" in result.detail


# ------------------------------------------------------------------ broken configs fail
BROKEN = {
    "a misspelt key": (
        PRODUCTION,
        lambda t: t.replace("default_workers_per_model", "default_worker_per_model"),
        "does not read: default_worker_per_model",
    ),
    "token auth off in production": (
        PRODUCTION,
        lambda t: t.replace(
            "disable_token_authorization=false", "disable_token_authorization=true"
        ),
        "token authorization is off",
    ),
    "token auth setting removed in production": (
        PRODUCTION,
        lambda t: t.replace("disable_token_authorization=false", "enable_envvars_config=true"),
        None,  # absent means on: still valid
    ),
    "an inference port the container does not expose": (
        PRODUCTION,
        lambda t: t.replace(
            "inference_address=http://0.0.0.0:8080", "inference_address=http://0.0.0.0:9090"
        ),
        "inference_address port 9090 is not the container's http port 8080",
    ),
    "an address without a port": (
        PRODUCTION,
        lambda t: t.replace("metrics_address=http://0.0.0.0:8082", "metrics_address=0.0.0.0"),
        "is not http(s)://host:port",
    ),
    "no model to load": (
        PRODUCTION,
        lambda t: re.sub(r"(?m)^load_models=.*$", "", t),
        "missing load_models",
    ),
    "log-mode metrics": (
        PRODUCTION,
        lambda t: t.replace("metrics_mode=prometheus", "metrics_mode=log"),
        "want prometheus",
    ),
    "a key set twice": (
        PRODUCTION,
        lambda t: t + "\njob_queue_size=5\n",
        "job_queue_size is set twice",
    ),
    "a non-integer size": (
        PRODUCTION,
        lambda t: t.replace("job_queue_size=100", "job_queue_size=lots"),
        "job_queue_size=lots is not an integer",
    ),
    "a local config open to the network without tokens": (
        LOCAL,
        lambda t: t.replace(
            "inference_address=http://127.0.0.1:8080", "inference_address=http://0.0.0.0:8080"
        ),
        "listens on 0.0.0.0 without token authorization",
    ),
    "a metrics file without the handler's histogram": (
        METRICS,
        lambda t: t.replace("model_prediction_probability", "model_prediction_prob"),
        "model_metrics does not declare model_prediction_probability",
    ),
    "a metrics file that is not YAML": (
        METRICS,
        lambda t: t + "\n  - [unclosed\n",
        "metrics.yaml",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_config_fails_the_check(repo: Path, case: str) -> None:
    path, change, expected = BROKEN[case]
    edit(repo, path, change)
    result = run_one(repo, "torchserve-config")
    if expected is None:
        assert result.ok, result.detail
    else:
        assert not result.ok and expected in result.detail, result.detail


# ------------------------------------------------------------------ the properties parser
def test_properties_are_parsed_as_java_does() -> None:
    text = (
        "# comment\n! also a comment\n"
        "a=1\n"
        "b : two words \n"
        "c three\n"
        "long = first, \\\n    second\n"
        "escaped\\ key=x\\ty\n"
        "unicode=caf\\u00e9\n"
        "empty=\n"
    )
    assert parse_properties(text) == {
        "a": "1",
        "b": "two words ",
        "c": "three",
        "long": "first, second",
        "escaped key": "x\ty",
        "unicode": "café",
        "empty": "",
    }


def test_a_duplicate_key_is_an_error() -> None:
    with pytest.raises(PropertiesError, match="set twice"):
        parse_properties("a=1\na=2\n")


# ------------------------------------------------------------------ the archive check
@pytest.mark.slow
def test_a_handler_with_two_classes_fails_the_archive_check(repo: Path) -> None:
    """TorchServe refuses a handler module defining two classes; so does the check."""
    edit(repo, HANDLER, lambda t: t + "\n\nclass Helper:\n    pass\n")
    result = run_one(repo, "torchserve-archive")
    assert not result.ok and "needs exactly one" in result.detail, result.detail


@pytest.mark.slow
def test_a_handler_that_does_not_import_fails_the_archive_check(repo: Path) -> None:
    edit(
        repo,
        HANDLER,
        lambda t: t.replace(
            "from mlgen_runtime.backends",
            "import nonexistent_module\nfrom mlgen_runtime.backends",
            1,
        ),
    )
    result = run_one(repo, "torchserve-archive")
    assert not result.ok and "nonexistent_module" in result.detail, result.detail
