"""The render matrix (every installed backend x answer cases) and copier/mlgen parity."""

from __future__ import annotations

import ast
import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN
from tests.fake_plugins import backend_plugin
from tests.rendering import installed_backends, read_tree, recorded_answers, render

ANSWER_CASES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "named": {"model_name": "fraud-score", "description": 'Scores "fraud" \\ risk, fast'},
    "edges": {
        "model_name": "m" * 40,
        "package_name": "m_pkg",
        "canary_weight_percent": 50,
        "latency_slo_p95_ms": 0.5,
        "python_version": "3.13",
        "retrain_schedule": "*/30 2-4 1,15 * 1-5",
    },
}


@pytest.mark.parametrize("case", sorted(ANSWER_CASES))
@pytest.mark.parametrize("backend", installed_backends())
def test_render_matrix(template_root: Path, tmp_path: Path, backend: str, case: str) -> None:
    answers = {"serving_backend": backend, **ANSWER_CASES[case]}
    repo = render(template_root, tmp_path / "repo", **answers)
    recorded = recorded_answers(repo)
    for key, value in answers.items():
        assert str(recorded[key]) == str(value)
    package = recorded["package_name"]

    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    assert project["name"] == recorded["model_name"]
    assert project["description"] == recorded["description"]
    assert project["requires-python"] == f">={recorded['python_version']}"

    manifest = json.loads((repo / ".mlgen" / "plugins.json").read_text())
    assert manifest["backend"]["name"] == backend
    for path in manifest["files"]:
        assert (repo / path).is_file(), path
    assert any(path.startswith(f"src/{package}/") for path in manifest["files"])

    python_files = list(repo.rglob("*.py"))
    assert python_files
    for path in python_files:
        ast.parse(path.read_text(), filename=str(path))


@pytest.mark.parametrize("model_name", ["demo-model", "customer-lifetime-value-churn-propensity"])
@pytest.mark.parametrize("backend", installed_backends())
def test_generated_code_is_clean_for_its_own_ruff(
    template_root: Path, tmp_path: Path, backend: str, model_name: str
) -> None:
    """A fresh repository ships linted and formatted by its own ``[tool.ruff]`` settings,
    so the user's first ``ruff format`` rewrites nothing (and collides with no update),
    whatever the length of its package name (``mlgen.finish`` formats it)."""
    repo = render(template_root, tmp_path / "repo", serving_backend=backend, model_name=model_name)
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [BIN / "ruff", *command, "--no-cache", "."],
            cwd=repo,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_plain_copier_and_mlgen_new_give_the_same_repository(
    template_root: Path, tmp_path: Path
) -> None:
    by_copier, by_mlgen = tmp_path / "by-copier", tmp_path / "by-mlgen"
    subprocess.run(
        [
            BIN / "copier",
            "copy",
            "--quiet",
            "--trust",
            "--defaults",
            "-d",
            "serving_backend=fastapi",
            str(template_root),
            str(by_copier),
        ],
        check=True,
    )
    subprocess.run(
        [BIN / "mlgen", "new", str(by_mlgen), "--backend", "fastapi", "--defaults"], check=True
    )
    copier_tree, mlgen_tree = read_tree(by_copier), read_tree(by_mlgen)
    assert sorted(copier_tree) == sorted(mlgen_tree)
    differing = [path for path in copier_tree if copier_tree[path] != mlgen_tree[path]]
    assert differing == []


def test_newly_installed_backend_is_a_choice_of_plain_copier(
    template_root: Path, tmp_path: Path, plugin_site: Path
) -> None:
    backend_plugin("echo", dist="acme-echo", version="3.1").install(plugin_site)
    repo = tmp_path / "repo"
    subprocess.run(
        [
            BIN / "copier",
            "copy",
            "--quiet",
            "--trust",
            "--defaults",
            "-d",
            "serving_backend=echo",
            "-d",
            "model_name=churn",
            str(template_root),
            str(repo),
        ],
        check=True,
    )
    assert (repo / "SERVING.md").read_text() == "churn uses the echo backend.\n"
    assert (repo / "src/churn/serving/server.py").read_text() == "# churn served by echo 3.1\n"
    # An ONNX backend that ships no modeling module gets the template's ONNX one.
    assert "mlgen_runtime.export import onnx" in (repo / "src/churn/modeling.py").read_text()
    manifest = json.loads((repo / ".mlgen/plugins.json").read_text())
    assert manifest["backend"] == {
        "name": "echo",
        "plugin": "echo",
        "distribution": "acme-echo",
        "version": "3.1",
    }
    assert '"requests>=2"' in (repo / "pyproject.toml").read_text()


def test_uninstalled_backend_is_not_a_choice_of_plain_copier(
    template_root: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            BIN / "copier",
            "copy",
            "--quiet",
            "--trust",
            "--defaults",
            "-d",
            "serving_backend=echo",
            str(template_root),
            str(tmp_path / "repo"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "Invalid choice for 'serving_backend'" in result.stderr
    assert not (tmp_path / "repo").exists()


def _copy(template_root: Path, destination: Path, backend: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            BIN / "copier",
            "copy",
            "--quiet",
            "--trust",
            "--defaults",
            "-d",
            f"serving_backend={backend}",
            "-d",
            "model_name=churn",
            str(template_root),
            str(destination),
        ],
        capture_output=True,
        text=True,
    )


def test_backend_with_a_new_export_format_brings_its_modeling_module(
    template_root: Path, tmp_path: Path, plugin_site: Path
) -> None:
    modeling = "src/{{ package_name }}/modeling.py.jinja"
    files = {modeling: 'EXPORT_FORMAT = "pmml"  # {{ model_name }}\n'}
    backend_plugin("pmmlserve", export_format="pmml", files=files).install(plugin_site)
    result = _copy(template_root, tmp_path / "repo", "pmmlserve")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "repo" / "src/churn/modeling.py").read_text()
    assert text == 'EXPORT_FORMAT = "pmml"  # churn\n'


def test_new_export_format_without_a_modeling_module_is_refused(
    template_root: Path, tmp_path: Path, plugin_site: Path
) -> None:
    backend_plugin("pmmlserve", export_format="pmml").install(plugin_site)
    result = _copy(template_root, tmp_path / "repo", "pmmlserve")
    assert result.returncode != 0
    assert "exports 'pmml', for which the template has no modeling module" in result.stderr
    assert "modeling.py.jinja" in result.stderr
