"""The project and feature-store checks pass on a generated repository and can fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgen.check_runner import run_checks
from tests.conftest import BuiltRepos
from tests.rendering import render


def _result(repo: Path, name: str) -> tuple[bool, str]:
    ((_, outcome),) = run_checks(repo, only=(name,))
    return outcome.ok, outcome.detail


def test_pyproject_check_catches_broken_metadata(tmp_path: Path, template_root: Path) -> None:
    repo = render(template_root, tmp_path / "repo")
    assert _result(repo, "pyproject")[0]
    (repo / "pyproject.toml").write_text('[project]\nname = "x"\n')
    ok, detail = _result(repo, "pyproject")
    assert not ok and "lacks version, dependencies" in detail
    (repo / "pyproject.toml").write_text("[project\n")
    ok, detail = _result(repo, "pyproject")
    assert not ok and "TOMLDecodeError" in detail


def test_python_syntax_check_names_the_broken_file(tmp_path: Path, template_root: Path) -> None:
    repo = render(template_root, tmp_path / "repo")
    assert _result(repo, "python-syntax")[0]
    (repo / "src" / "demo_model" / "broken.py").write_text("def f(:\n    pass\n")
    ok, detail = _result(repo, "python-syntax")
    assert not ok and detail.startswith("src/demo_model/broken.py:1:")


@pytest.mark.slow
def test_feast_apply_check_catches_the_removed_feature_api(
    built_repos: BuiltRepos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from mlgen.environments import REPO_PYTHON_ENV, python_in

    source, environment = built_repos.get("fastapi")
    repo = tmp_path / "repo"
    shutil.copytree(source, repo)
    monkeypatch.setenv(REPO_PYTHON_ENV, str(python_in(environment)))
    ok, detail = _result(repo, "feast-apply")
    assert ok, detail
    definitions = repo / "feature_repo" / "definitions.py"
    definitions.write_text(
        definitions.read_text().replace(
            "feature_view = FeatureView(",
            "from feast import Feature\n\nfeature_view = FeatureView(\n"
            "    features=[Feature(name='x', dtype=ValueType.FLOAT)],",
        )
    )
    ok, detail = _result(repo, "feast-apply")
    assert not ok and "feast apply" in detail and "unexpected keyword argument 'features'" in detail
