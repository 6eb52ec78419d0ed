"""mlgen_runtime.backends.triton_config with Triton's real ModelConfig schema and an ONNX
graph from skl2onnx (needs the ``triton`` and ``onnx`` extras)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc")

from sklearn.linear_model import LogisticRegression

from mlgen_runtime.backends import triton_config
from mlgen_runtime.export import onnx as onnx_export

FEATURES = ("a", "b", "c")
RULES = triton_config.Rules(
    model_name="churn",
    input_name="features",
    n_features=3,
    probabilities_output="probabilities",
    latency_slo_ms=50,
)
CONFIG = """name: "churn"
backend: "onnxruntime"
max_batch_size: 64
input [ { name: "features" data_type: TYPE_FP32 dims: [ 3 ] } ]
output [
  { name: "label" data_type: TYPE_INT64 dims: [ 1 ] reshape: { shape: [ ] } },
  { name: "probabilities" data_type: TYPE_FP32 dims: [ 2 ] }
]
dynamic_batching { preferred_batch_size: [ 8, 32 ] max_queue_delay_microseconds: 500 }
instance_group [ { count: 1 kind: KIND_CPU } ]
"""


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    X = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    path = tmp_path_factory.mktemp("graph") / "model.onnx"
    return onnx_export.export_sklearn(model, path, feature_names=FEATURES, name="churn")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.pbtxt"
    path.write_text(CONFIG)
    return path


def test_a_config_that_fits_the_graph_and_the_rules(config: Path, graph: Path) -> None:
    result = triton_config.validate(config, graph, RULES)
    assert result.ok, result.problems
    assert "matches the ONNX graph" in result.summary


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("dims: [ 3 ]", "dims: [ 4 ]", "3 features, so dims must be [3]"),
        ("kind: KIND_CPU", "kind: KIND_GPU", "the pods request no GPU"),
        ("max_queue_delay_microseconds: 500", "max_queue_delay_microseconds: 40000", "half"),
        ('name: "probabilities"', 'name: "probability"', "'probabilities' (what clients read)"),
    ],
)
def test_problems_name_what_differs(
    config: Path, graph: Path, old: str, new: str, problem: str
) -> None:
    config.write_text(CONFIG.replace(old, new, 1))
    result = triton_config.validate(config, graph, RULES)
    assert any(problem in found for found in result.problems), result.problems


def test_a_parse_error_names_line_and_column(config: Path) -> None:
    config.write_text('name: "churn"\nmax_batch_sise: 8\n')
    with pytest.raises(triton_config.ConfigError, match=r"^config\.pbtxt:2:1: "):
        triton_config.load_config(config)


def test_repositories_deployable_and_local(config: Path, graph: Path, tmp_path: Path) -> None:
    deploy = triton_config.build_repository(graph, tmp_path / "deploy", config, RULES)
    assert (deploy / "churn" / "config.pbtxt").read_text() == CONFIG
    assert (deploy / "churn" / "1" / "model.onnx").read_bytes() == graph.read_bytes()
    python_model = tmp_path / "model.py"
    python_model.write_text("# the python-backend model\n")
    local = triton_config.build_local_repository(
        graph, tmp_path / "local", config, RULES, python_model, "# LOCAL ONLY\n"
    )
    text = (local / "churn" / "config.pbtxt").read_text()
    assert text.startswith("# LOCAL ONLY\n")
    twin = triton_config.parse_config(text)
    assert twin.backend == "python" and twin.max_batch_size == 64
    assert [triton_config.kind_name(group.kind) for group in twin.instance_group] == ["KIND_CPU"]
    assert (local / "churn" / "1" / "model.py").read_text() == "# the python-backend model\n"


def test_the_check_and_build_command(
    config: Path, graph: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def validate(config_path: Path, model_path: Path | None) -> triton_config.Validation:
        return triton_config.validate(config_path, model_path or graph, RULES)

    def build(artifact: Path, destination: Path | None) -> Path:
        return triton_config.build_repository(
            artifact, destination or tmp_path / "d", config, RULES
        )

    options = {
        "prog": "model_repository",
        "validate": validate,
        "build": build,
        "build_local": build,
        "default_config": config,
        "default_artifact": tmp_path / "missing.onnx",
        "train_command": "python -m churn.train",
    }
    assert triton_config.main(["check"], **options) == 0
    assert "churn" in capsys.readouterr().out
    config.write_text(CONFIG.replace("max_batch_size: 64", "max_batch_size: 0"))
    assert triton_config.main(["check", str(config)], **options) == 1
    assert "problem(s)" in capsys.readouterr().err
    out = tmp_path / "deploy"
    assert (
        triton_config.main(["build", "--artifact", str(graph), "--out", str(out)], **options) == 0
    )
    assert (out / "churn" / "1" / "model.onnx").is_file()
    with pytest.raises(SystemExit) as usage:
        triton_config.main(["build"], **options)
    assert (
        usage.value.code == 2 and "train first (python -m churn.train)" in capsys.readouterr().err
    )
