"""The ``model_framework`` answer: the framework x backend pair table, its refusal (copier's
validator and ``mlgen new`` alike) and what each framework renders."""

from __future__ import annotations

import subprocess
import tomllib
from dataclasses import replace
from pathlib import Path

import copier
import pytest

from mlgen import frameworks
from mlgen.backend import BackendDefinitionError
from mlgen.plugins import get_registry
from tests.conftest import BIN
from tests.rendering import installed_backends, recorded_answers, render

BUILT_IN = {
    "fastapi": ["sklearn", "lightgbm", "xgboost"],
    "rayserve": ["sklearn", "lightgbm", "xgboost"],
    "triton": ["sklearn", "lightgbm", "xgboost"],
    "torchserve": ["pytorch"],
    "tfserving": ["tensorflow"],
}
REFUSAL = (
    "tfserving serves savedmodel and lightgbm exports onnx: use tfserving with tensorflow, "
    "or lightgbm with "
)


def _backends() -> dict[str, object]:
    registry = get_registry()
    return {name: registered.backend for name, registered in registry.backends.items()}


@pytest.mark.parametrize("backend", sorted(BUILT_IN))
def test_each_built_in_backend_serves_the_frameworks_of_its_format(backend: str) -> None:
    chosen = get_registry().get_backend(backend).backend
    assert frameworks.frameworks_for(chosen) == BUILT_IN[backend]
    assert frameworks.default_framework(chosen) == BUILT_IN[backend][0]
    for framework in frameworks.framework_names():
        problem = frameworks.pair_problem(backend, framework, _backends())  # type: ignore[arg-type]
        assert (problem == "") == (framework in BUILT_IN[backend]), (framework, problem)


def test_an_unsupported_pair_is_one_line_naming_the_pairs_that_work() -> None:
    problem = frameworks.pair_problem("tfserving", "lightgbm", _backends())  # type: ignore[arg-type]
    assert problem.startswith(REFUSAL)
    assert "\n" not in problem
    named = problem.removeprefix(REFUSAL).replace(" or ", ", ").split(", ")
    assert {"fastapi", "rayserve", "triton"} <= set(named)
    assert "tfserving" not in named and "torchserve" not in named


def test_a_backend_serving_two_formats_takes_both_frameworks() -> None:
    fastapi = get_registry().get_backend("fastapi").backend
    both = replace(fastapi, name="both", export_formats=("onnx", "torchscript"))
    assert both.served_formats() == ("onnx", "torchscript")
    assert frameworks.frameworks_for(both) == ["sklearn", "lightgbm", "xgboost", "pytorch"]
    assert frameworks.export_format(both, "pytorch") == "torchscript"
    assert frameworks.export_format(both, "xgboost") == "onnx"
    assert frameworks.pair_problem("both", "tensorflow", {"both": both}).startswith(
        "both serves onnx or torchscript and tensorflow exports savedmodel: use both with "
        "sklearn, lightgbm, xgboost or pytorch"
    )


def test_a_format_of_its_own_takes_any_framework() -> None:
    fastapi = get_registry().get_backend("fastapi").backend
    pmml = replace(fastapi, name="pmml", export_format="pmml")
    assert frameworks.frameworks_for(pmml) == frameworks.framework_names()
    assert frameworks.pair_problem("pmml", "lightgbm", {"pmml": pmml}) == ""


def test_export_formats_must_include_the_main_format() -> None:
    fastapi = get_registry().get_backend("fastapi").backend
    with pytest.raises(BackendDefinitionError, match="must include export_format 'onnx'"):
        replace(fastapi, export_formats=("torchscript",))
    with pytest.raises(BackendDefinitionError, match="must be a lower-case name"):
        replace(fastapi, export_formats=("onnx", "Saved Model"))


def test_mlgen_new_refuses_an_unsupported_pair_and_writes_nothing(tmp_path: Path) -> None:
    destination = tmp_path / "repo"
    result = subprocess.run(
        [BIN / "mlgen", "new", destination, "-b", "tfserving", "-d", "model_framework=lightgbm"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: model_framework: {REFUSAL}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not destination.exists() and list(tmp_path.iterdir()) == []


def test_mlgen_new_checks_the_pair_with_the_default_backend(tmp_path: Path) -> None:
    result = subprocess.run(
        [BIN / "mlgen", "new", tmp_path / "repo", "--defaults", "-d", "model_framework=pytorch"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "fastapi serves onnx and pytorch exports torchscript" in result.stderr
    assert "pytorch with torchserve" in result.stderr
    assert not (tmp_path / "repo").exists()


def test_copiers_validator_refuses_an_unsupported_pair(template_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"question 'model_framework': tfserving serves") as caught:
        copier.run_copy(
            str(template_root),
            tmp_path / "out",
            {"serving_backend": "tfserving", "model_framework": "lightgbm"},
            defaults=True,
            unsafe=True,
            quiet=True,
            vcs_ref="HEAD",
        )
    assert REFUSAL in str(caught.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("backend", installed_backends())
def test_the_default_framework_keeps_each_backends_model(
    template_root: Path, tmp_path: Path, backend: str
) -> None:
    """Without the answer (a new repository's default, or an existing repository's update,
    which renders with the defaults), each backend trains what it trained before the
    question existed: its export format's framework."""
    chosen = get_registry().get_backend(backend).backend
    repo = render(template_root, tmp_path / "repo", serving_backend=backend, model_name="churn")
    assert recorded_answers(repo)["model_framework"] == frameworks.default_framework(chosen)
    modeling = (repo / "src/churn/modeling.py").read_text()
    assert f'EXPORT_FORMAT = "{chosen.export_format}"' in modeling


RENDERED = {
    # framework: (backend, text in modeling.py, requirements it adds, requirements it lacks)
    "sklearn": ("fastapi", "LogisticRegression(", [], ["lightgbm", "xgboost", "onnxmltools"]),
    "lightgbm": ("fastapi", "LGBMClassifier(", ["lightgbm", "onnxmltools"], ["xgboost"]),
    "xgboost": ("fastapi", "XGBClassifier(", ["xgboost", "onnxmltools"], ["lightgbm"]),
    "pytorch": ("torchserve", "class ChurnNet(nn.Module)", ["torch"], ["lightgbm", "xgboost"]),
    "tensorflow": ("tfserving", "keras.Sequential(", ["tensorflow"], ["lightgbm", "torch"]),
}


@pytest.mark.parametrize("framework", sorted(RENDERED))
def test_each_framework_renders_its_model_and_dependencies_only(
    template_root: Path, tmp_path: Path, framework: str
) -> None:
    backend, model_code, added, absent = RENDERED[framework]
    repo = render(
        template_root,
        tmp_path / "repo",
        serving_backend=backend,
        model_framework=framework,
        model_name="churn",
    )
    modeling = (repo / "src/churn/modeling.py").read_text()
    assert model_code in modeling
    for other_code in {code for _, code, _, _ in RENDERED.values()} - {model_code}:
        assert other_code not in modeling
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    names = {
        requirement.partition(">")[0].partition("=")[0] for requirement in project["dependencies"]
    }
    assert set(added) <= names and not set(absent) & names, sorted(names)


@pytest.mark.parametrize("framework", ["lightgbm", "xgboost"])
def test_boosted_trees_code_is_clean_for_its_own_ruff(
    template_root: Path, tmp_path: Path, framework: str
) -> None:
    repo = render(template_root, tmp_path / "repo", model_framework=framework)
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [BIN / "ruff", *command, "--no-cache", "."], cwd=repo, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_update_of_a_repository_predating_the_question_keeps_its_model(
    tmp_path: Path, versioned_template: Path
) -> None:
    """A torchserve repository whose answers have no ``model_framework`` (made before the
    question existed) updates to pytorch, its old model: modeling.py is not touched."""
    from tests.test_update import answers_of, make_repo, update
    from tests.versioned import commit_all

    repo = make_repo(tmp_path / "repo", versioned_template, serving_backend="torchserve")
    answers = repo / ".copier-answers.yml"
    lines = answers.read_text().splitlines(keepends=True)
    answers.write_text("".join(line for line in lines if not line.startswith("model_framework:")))
    commit_all(repo, "answers as a repository made before model_framework has them")
    modeling = (repo / "src/demo_model/modeling.py").read_bytes()
    changes = update(repo, vcs_ref="v2")
    assert all(path != "src/demo_model/modeling.py" for _, path in changes), changes
    assert (repo / "src/demo_model/modeling.py").read_bytes() == modeling
    assert answers_of(repo)["model_framework"] == "pytorch"
