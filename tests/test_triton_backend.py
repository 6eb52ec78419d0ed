"""The Triton backend plugin: its definitions, what it renders, and its ``triton-config`` check.

The check parses ``config.pbtxt`` with Triton's own ``ModelConfig`` protobuf and compares it
with the ONNX graph of a freshly trained model, in the generated repository's environment.
Each breaking test edits a copy of a rendered repository and runs only that check through
``mlgen check``'s runner: a wrong dim, a wrong data type, a misspelled field and a GPU
instance on CPU-only pods must each fail with the reason (a check that cannot fail
proves nothing). Those need the repository's environment: slow tier.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mlgen import CheckResult
from mlgen.check_runner import collect_checks, run_checks
from mlgen.checks import find_tool
from mlgen.plugins import get_registry
from tests.conftest import BuiltRepos
from tests.rendering import render

CHECK = "triton-config"
CONFIG = "model_repository/demo-model/config.pbtxt"
DEPLOYMENT = "deploy/k8s/base/deployment/deployment.yaml"


def run_triton_check(repo: Path) -> CheckResult:
    results = {check.name: result for check, result in run_checks(repo, only=(CHECK,))}
    assert set(results) == {CHECK}, "the triton-config check is not registered"
    return results[CHECK]


# ------------------------------------------------------------------ definitions
@pytest.mark.parametrize(("name", "gpus"), [("triton", 0), ("triton-gpu", 1)])
def test_backends_are_registered(name: str, gpus: int) -> None:
    backend = get_registry().get_backend(name).backend
    container = backend.container
    assert backend.export_format == "onnx"
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d{2}\.\d{2}-py3", container.base_image)
    assert {port.name: port.container_port for port in container.ports} == {
        "http": 8000,
        "grpc": 8001,
        "metrics": 8002,
    }
    assert (container.readiness.path, container.readiness.port) == ("/v2/health/ready", "http")
    assert (container.liveness.path, container.liveness.port) == ("/v2/health/live", "http")
    assert (container.metrics_port, container.metrics_path) == ("metrics", "/metrics")
    assert container.resources.gpus == gpus
    assert "--metrics-config=summary_latencies=true" in container.command
    assert "nv_inference_request_success" in backend.metrics.request_rate
    assert "nv_inference_request_failure" in backend.metrics.error_rate
    assert "nv_inference_request_summary_us" in backend.metrics.latency_quantile
    assert any(dep.startswith("tritonclient[http,grpc]") for dep in backend.dependencies)
    assert any("nvidia-pytriton" in dep and "linux" in dep for dep in backend.dev_dependencies)


def _query(template: str, window: str = "5m", quantile: str = "0.95") -> str:
    selector = 'namespace="ml", app="m"'
    return (
        template.replace("{selector}", selector)
        .replace("{window}", window)
        .replace("{quantile}", quantile)
    )


def test_metric_queries_evaluate_on_triton_series(tmp_path: Path) -> None:
    """The backend's PromQL, run by promtool on series shaped like Triton's /metrics."""
    promtool = find_tool("promtool", "apt-get install prometheus")
    metrics = get_registry().get_backend("triton").backend.metrics
    labels = 'namespace="ml", app="m", model="m", version="1"'
    series = {
        # pod a: 60 successes and 6 failures a minute; pod b: 120 successes a minute
        f'nv_inference_request_success{{{labels}, pod="a"}}': "0+60x30",
        f'nv_inference_request_failure{{{labels}, pod="a"}}': "0+6x30",
        f'nv_inference_request_success{{{labels}, pod="b"}}': "0+120x30",
        f'nv_inference_request_failure{{{labels}, pod="b"}}': "0x30",
        # p95 of 20 ms on pod a, 50 ms on pod b: the slowest pod counts; p50 is not read
        f'nv_inference_request_summary_us{{{labels}, pod="a", quantile="0.95"}}': "20000x30",
        f'nv_inference_request_summary_us{{{labels}, pod="b", quantile="0.95"}}': "50000x30",
        f'nv_inference_request_summary_us{{{labels}, pod="b", quantile="0.5"}}': "900000x30",
        # another service's series in the same namespace
        'nv_inference_request_success{namespace="ml", app="other"}': "0+6000x30",
    }
    expectations = [
        (metrics.request_rate, (60 + 6 + 120) / 60),
        (metrics.error_rate, 6 / 60),
        (metrics.latency_quantile, 0.05),
    ]
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": k, "values": v} for k, v in series.items()],
                "promql_expr_test": [
                    {
                        "expr": _query(query),
                        "eval_time": "20m",
                        "exp_samples": [{"labels": "{}", "value": value}],
                    }
                    for query, value in expectations
                ],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("backend", "kind", "gpu_request"),
    [
        ("triton", "KIND_CPU", None),
        ("triton-gpu", "KIND_GPU", "1"),
    ],
)
def test_config_and_manifests_follow_the_gpu_choice(
    template_root: Path, tmp_path: Path, backend: str, kind: str, gpu_request: str | None
) -> None:
    repo = render(template_root, tmp_path / "repo", serving_backend=backend)
    config = (repo / CONFIG).read_text()
    assert 'backend: "onnxruntime"' in config
    assert f"kind: {kind}" in config
    assert "dynamic_batching" in config and "max_batch_size: 256" in config
    deployment = yaml.safe_load((repo / DEPLOYMENT).read_text())
    resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["limits"].get("nvidia.com/gpu") == gpu_request
    dockerfile = (repo / "Dockerfile").read_text()
    assert "COPY artifacts/model.onnx /models/demo-model/${MODEL_VERSION}/model.onnx" in dockerfile
    # HEALTHCHECK on the liveness endpoint (docs/plugins.md, "The HEALTHCHECK rule")
    assert "/v2/health/live" in dockerfile and "USER 10001:10001" in dockerfile


def test_the_check_is_registered_for_triton_repositories_only(
    template_root: Path, tmp_path: Path
) -> None:
    names = {
        backend: {
            check.name
            for check in collect_checks(
                render(template_root, tmp_path / backend, serving_backend=backend)
            )
        }
        for backend in ("fastapi", "triton", "triton-gpu")
    }
    assert CHECK not in names["fastapi"]
    assert CHECK in names["triton"] and CHECK in names["triton-gpu"]


# ------------------------------------------------------------------ the check, for real
@pytest.fixture(scope="module")
def triton_repo(built_repos: BuiltRepos) -> Path:
    repo, _ = built_repos.get("triton")  # renders once and builds its environment
    return repo


@pytest.mark.slow
def test_the_rendered_config_passes(triton_repo: Path) -> None:
    result = run_triton_check(triton_repo)
    assert result.ok, result.detail
    assert "matches the ONNX graph" in result.detail
    assert "features FP32[6]" in result.detail


@pytest.mark.slow
@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        pytest.param(
            "dims: [ 6 ]",
            "dims: [ 5 ]",
            "input 'features': dims [5] in the config, [6]",
            id="wrong-dim",
        ),
        pytest.param(
            "data_type: TYPE_FP32",
            "data_type: TYPE_INT32",
            "input 'features' is TYPE_INT32 in the config, TYPE_FP32 in the ONNX graph",
            id="wrong-dtype",
        ),
        pytest.param(
            "max_batch_size: 256",
            "max_batch_sise: 256",
            'has no field named "max_batch_sise"',
            id="misspelled-field",
        ),
        pytest.param(
            "kind: KIND_CPU",
            "kind: KIND_GPU",
            "instance_group uses KIND_GPU but the pods request no GPU",
            id="gpu-on-cpu-pods",
        ),
    ],
)
def test_a_broken_config_fails_the_check(
    triton_repo: Path, tmp_path: Path, old: str, new: str, reason: str
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(triton_repo, repo, ignore=shutil.ignore_patterns("artifacts", "__pycache__"))
    config = repo / CONFIG
    text = config.read_text(encoding="utf-8")
    assert old in text
    config.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = run_triton_check(repo)
    assert not result.ok
    assert reason in result.detail, result.detail


# ------------------------------------------------------------------ raw inputs (issue 12)
def test_a_schema_with_strings_and_nulls_gets_one_input_per_feature(
    template_root: Path, tmp_path: Path
) -> None:
    """The rendered config of the penguins schema (string categories, nullable numbers)
    declares one TYPE_STRING / TYPE_FP32 [1] input per feature, in schema order, which the
    repository's rules accept; a retyped input is named, and a matrix rule refuses it."""
    from mlgen_runtime.backends import triton_config
    from mlgen_runtime.schema import load_schema
    from tests.test_raw_rows import SCHEMA

    repo = render(
        template_root,
        tmp_path / "repo",
        serving_backend="triton",
        data_source="penguins.csv",
        label_column="species",
        positive_class="Adelie",
        entity_column="",
        timestamp_column="",
        feature_schema=SCHEMA,
    )
    schema = load_schema(next((repo / "src").glob("*/features.yaml")))
    raw = triton_config.raw_inputs(schema.features)
    assert raw == (
        ("island", "TYPE_STRING"),
        *((name, "TYPE_FP32") for name in schema.names[1:-1]),
        ("sex", "TYPE_STRING"),
    )
    rules = triton_config.Rules(
        model_name="demo-model",
        input_name="features",
        n_features=schema.width,
        probabilities_output="probabilities",
        raw_inputs=raw,
    )
    text = (repo / CONFIG).read_text(encoding="utf-8")
    config = triton_config.parse_config(text)
    assert [tensor.name for tensor in config.input] == list(schema.names)
    assert triton_config.config_problems(config, rules) == []
    assert {name for name, _ in raw} == set(config.model_warmup[0].inputs)

    retyped = text.replace("data_type: TYPE_STRING", "data_type: TYPE_FP32", 1)
    problems = triton_config.config_problems(triton_config.parse_config(retyped), rules)
    assert "input 'island' is TYPE_FP32: the feature's raw values are TYPE_STRING" in problems
    matrix = triton_config.Rules("demo-model", "features", schema.width, "probabilities")
    problems = triton_config.config_problems(config, matrix)
    assert any("clients send one input, 'features'" in problem for problem in problems)


def test_a_numeric_schema_keeps_the_one_matrix_input(template_root: Path, tmp_path: Path) -> None:
    from mlgen_runtime.backends import triton_config
    from mlgen_runtime.schema import load_schema

    repo = render(template_root, tmp_path / "repo", serving_backend="triton")
    schema = load_schema(next((repo / "src").glob("*/features.yaml")))
    assert triton_config.raw_inputs(schema.features) == ()
    config = triton_config.parse_config((repo / CONFIG).read_text(encoding="utf-8"))
    assert [(tensor.name, list(tensor.dims)) for tensor in config.input] == [
        ("features", [schema.width])
    ]
