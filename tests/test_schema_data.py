"""A repository for the user's own table: features.yaml from the answers, green with no edit.

Fast tier: the data and schema answers render a ``features.yaml`` the runtime loads, and a
bad schema answer or file is refused in one line naming the key (and the line). Slow
tier: scikit-learn's breast-cancer table (30 numeric columns whose names have spaces, a
text label), written to Parquet by the test, becomes a repository whose own suite passes,
whose ``feast-apply`` check passes on all 569 rows, and whose broken ``features.yaml`` is
one line naming key and line through the repository's loader and through ``mlgen check``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlgen.answers import validation_message
from mlgen.check_runner import run_checks
from mlgen.environments import REPO_PYTHON_ENV, python_in, run_in_repo
from mlgen_runtime.schema import SchemaError, load_schema
from tests.conftest import BuiltRepos
from tests.rendering import render

DATA_FILE = "data/breast cancer.parquet"
LABEL = "diagnosis"
# Writes the table and prints the feature_schema answer (what `mlgen new --data` infers):
# each column's name made an identifier, its range with a margin, the first row as example.
BREAST_CANCER = """
import json, math, sys
from sklearn.datasets import load_breast_cancer
frame = load_breast_cancer(as_frame=True).frame
frame["diagnosis"] = frame.pop("target").map({0: "malignant", 1: "benign"})
frame.to_parquet(sys.argv[1], index=False)
features = [
    {"name": column.replace(" ", "_"), "column": column, "type": "number", "minimum": 0,
     "maximum": math.ceil(float(frame[column].max()) * 2), "description": f"The {column}."}
    for column in frame.columns if column != "diagnosis"
]
row = frame.iloc[0]
example = {f["name"]: float(row[f["column"]]) for f in features}
print(json.dumps({"features": features, "example": example}))
"""


# A table with an entity id and an event timestamp (three events per customer), text
# levels with nulls and an unknown level, a boolean: Feast reads it in place.
EVENTS = """
import sys
import numpy as np, pandas as pd
rng = np.random.default_rng(3)
n = 600
now = pd.Timestamp.now(tz="UTC").floor("s")
plan = rng.choice(["basic", "premium", "gold", None], n, p=[0.5, 0.3, 0.1, 0.1])
frame = pd.DataFrame({
    "customer_id": np.repeat(np.arange(200), 3),
    "event_timestamp": now - pd.to_timedelta(
        np.tile([1, 21, 41], 200) + rng.integers(0, 19, n), unit="D"
    ),
    "tenure": rng.uniform(0, 100, n).round(1),
    "plan": pd.array(plan, dtype=object),
    "autopay": rng.random(n) < 0.5,
})
frame["churned"] = (rng.random(n) < 0.3).astype(int)
frame.to_parquet(sys.argv[1], index=False)
"""
EVENTS_SCHEMA = {
    "features": [
        {"name": "tenure", "type": "number", "minimum": 0, "maximum": 200},
        {"name": "plan", "type": "category", "levels": ["basic", "premium", "other"],
         "unknown": "other", "nullable": True, "impute": "most_frequent"},
        {"name": "autopay", "type": "boolean"},
    ],
    "example": {"tenure": 12.5, "plan": "basic", "autopay": True},
}  # fmt: skip


def _answers(feature_schema: dict[str, Any], **answers: str) -> dict[str, Any]:
    return {
        "data_source": DATA_FILE,
        "label_column": LABEL,
        "positive_class": "malignant",
        "entity_column": "",
        "timestamp_column": "",
        "feature_schema": feature_schema,
        **answers,
    }


SMALL_SCHEMA = {
    "features": [
        {"name": "mean_radius", "column": "mean radius", "type": "number", "minimum": 0,
         "maximum": 60},
        {"name": "island", "type": "category", "levels": ["Biscoe", "Dream", "other"],
         "unknown": "other", "nullable": True},
    ],
    "example": {"mean_radius": 14.2, "island": "Dream"},
}  # fmt: skip


def test_the_answers_render_a_features_yaml_the_runtime_loads(
    tmp_path: Path, template_root: Path
) -> None:
    repo = render(template_root, tmp_path / "repo", **_answers(SMALL_SCHEMA))
    schema = load_schema(repo / "src" / "demo_model" / "features.yaml")
    assert schema.dataset is not None
    assert (schema.dataset.source, schema.dataset.label, schema.dataset.entity) == (
        DATA_FILE,
        LABEL,
        None,
    )
    assert schema.dataset.feature_view == "demo_model_features"
    assert schema.dataset.entity_name == "row"
    assert schema.columns == {"mean_radius": "mean radius", "island": "island"}
    assert schema.feature("island").impute == "most_frequent"
    assert schema.example_row() == {"mean_radius": 14.2, "island": "Dream"}
    answers = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    assert answers["feature_schema"] == SMALL_SCHEMA  # `mlgen update` re-renders the same file
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [Path(sys.executable).parent / "ruff", *command, "--no-cache", "."],
            cwd=repo,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_demo_answers_render_the_demo_schema(tmp_path: Path, template_root: Path) -> None:
    repo = render(template_root, tmp_path / "repo")
    schema = load_schema(repo / "src" / "demo_model" / "features.yaml")
    assert schema.dataset is not None and schema.dataset.is_demo
    assert (schema.dataset.entity_name, schema.dataset.feature_view) == (
        "customer",
        "customer_features",
    )
    assert schema.names[0] == "tenure_months" and schema.feature("autopay").levels == (0, 1)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "feature_schema",
            {"features": [{"name": "x", "type": "text", "minimum": 0, "maximum": 1}]},
            "features[0].type: must be one of number, integer, category, boolean, got 'text'",
        ),
        (
            "feature_schema",
            {"features": [{"name": "x y", "type": "number", "minimum": 0, "maximum": 1}]},
            "features[0].name: feature name 'x y' must be a Python identifier",
        ),
        ("feature_schema", {"features": []}, "features: needs at least one feature"),
        ("feature_schema", "tenure", "must be a mapping with a features: list"),
        ("data_source", "data/table.xlsx", "is not a .parquet or .csv file"),
        ("label_column", "", "must name a column of the table"),
    ],
)
def test_a_bad_data_answer_is_refused_in_one_line(field: str, value: Any, message: str) -> None:
    problem = validation_message(field, value)
    assert message in problem and "\n" not in problem


# ---------------------------------------------------------------- slow: a real table


@pytest.fixture(scope="module")
def breast_cancer(
    built_repos: BuiltRepos, tmp_path_factory: pytest.TempPathFactory, template_root: Path
) -> tuple[Path, Path]:
    """A fastapi repository generated for the breast-cancer table, and its environment."""
    demo, environment = built_repos.get("fastapi")
    scratch = tmp_path_factory.mktemp("breast-cancer")
    table = scratch / "table.parquet"
    wrote = run_in_repo(demo, environment, ["python", "-c", BREAST_CANCER, str(table)])
    assert wrote.returncode == 0, wrote.stderr[-2000:]
    feature_schema = json.loads(wrote.stdout)
    repo = render(template_root, scratch / "repo", **_answers(feature_schema))
    (repo / DATA_FILE).parent.mkdir(parents=True)
    shutil.copy(table, repo / DATA_FILE)  # the user's data, where features.yaml says
    return repo, environment


@pytest.fixture
def repo_python(
    breast_cancer: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """``mlgen check`` runs the repository's code in the shared environment."""
    monkeypatch.setenv(REPO_PYTHON_ENV, str(python_in(breast_cancer[1])))
    yield breast_cancer[0]


@pytest.mark.slow
def test_a_repository_for_the_breast_cancer_table_passes_its_own_suite(
    breast_cancer: tuple[Path, Path],
) -> None:
    repo, environment = breast_cancer
    result = run_in_repo(
        repo,
        environment,
        ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not integration"],
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert "failed" not in summary and "error" not in summary, summary
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 25, summary  # the schema's rules: runtime's
    trained = run_in_repo(repo, environment, ["python", "-m", "demo_model.train", "--no-register"])
    assert trained.returncode == 0, trained.stderr[-2000:]
    record = json.loads((repo / "artifacts" / "metrics.json").read_text())
    assert record["n_train"] + record["n_test"] == 569  # the whole table, not 20,000 rows
    assert record["features"][0] == "mean_radius"


@pytest.mark.slow
def test_the_feast_check_passes_on_the_whole_table(repo_python: Path) -> None:
    ((_, schema),) = run_checks(repo_python, only=("feature-schema",))
    assert schema.ok and "30 features" in schema.detail, schema.detail
    ((_, feast),) = run_checks(repo_python, only=("feast-apply",))
    assert feast.ok, feast.detail


@pytest.mark.slow
def test_a_broken_schema_file_is_one_line_through_the_loader_and_mlgen_check(
    breast_cancer: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, environment = breast_cancer
    repo = tmp_path / "repo"
    shutil.copytree(source, repo, ignore=shutil.ignore_patterns("artifacts", "mlflow*"))
    path = repo / "src" / "demo_model" / "features.yaml"
    lines = path.read_text().splitlines()
    number = next(i for i, line in enumerate(lines) if line.strip() == "type: number")
    lines[number] = lines[number].replace("number", "text")
    path.write_text("\n".join(lines) + "\n")
    expected = (
        f"src/demo_model/features.yaml:{number + 1}: features[0].type: must be one of "
        "number, integer, category, boolean, got 'text'"
    )
    with pytest.raises(SchemaError) as refused:
        load_schema(path)
    absolute = expected.replace("src/demo_model/features.yaml", str(path))
    assert str(refused.value) == absolute
    loader = run_in_repo(repo, environment, ["python", "-m", "demo_model.features"])
    assert loader.returncode == 1
    assert loader.stderr.strip().splitlines() == [f"error: {absolute}"]
    monkeypatch.setenv(REPO_PYTHON_ENV, str(python_in(environment)))
    ((_, outcome),) = run_checks(repo, only=("feature-schema",))
    assert not outcome.ok and outcome.detail == expected


@pytest.mark.slow
def test_a_table_with_entity_and_timestamp_is_feasts_source_in_place(
    built_repos: BuiltRepos, tmp_path: Path, template_root: Path
) -> None:
    """Feast reads the user's Parquet table itself, with its own event timestamps: text
    levels with nulls, an unknown level, a boolean, three events per entity."""
    demo, environment = built_repos.get("fastapi")
    answers = _answers(
        EVENTS_SCHEMA,
        data_source="data/events.parquet",
        label_column="churned",
        positive_class="1",
        entity_column="customer_id",
        timestamp_column="event_timestamp",
    )
    repo = render(template_root, tmp_path / "repo", **answers)
    (repo / "data").mkdir()
    wrote = run_in_repo(
        demo, environment, ["python", "-c", EVENTS, str(repo / "data" / "events.parquet")]
    )
    assert wrote.returncode == 0, wrote.stderr[-2000:]
    probe = "from demo_model import feature_store as f; print(f.IN_PLACE, f.source_path())"
    placed = run_in_repo(repo, environment, ["python", "-c", probe])
    assert placed.stdout.split() == ["True", str(repo / "data" / "events.parquet")], placed.stderr
    tests = ["tests/test_features.py", "tests/test_feature_store.py", "tests/test_train.py"]
    select = ["-k", "not test_train or dataset or point_in_time"]
    result = run_in_repo(
        repo,
        environment,
        ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests, *select],
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary, summary
