"""Schema inference from the user's table (``mlgen new --data``, ``mlgen schema infer``).

The answers it produces for the three acceptance tables (scikit-learn's breast cancer,
palmerpenguins, an events table with an entity and a timestamp), and each bad input
refused in one line naming the column and the fix, with nothing written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mlgen.cli import cli
from mlgen.schema_infer import (
    MAX_LEVELS,
    identifier,
    infer_answers,
    infer_table,
    value_range,
)

pa = pytest.importorskip("pyarrow")
pacsv = pytest.importorskip("pyarrow.csv")
pq = pytest.importorskip("pyarrow.parquet")

from tests.tables import breast_cancer, events, penguins_csv  # noqa: E402


def _features(answers: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {feature["name"]: feature for feature in answers["feature_schema"]["features"]}


def _is_valid(feature: dict[str, Any], value: Any) -> bool:
    if value is None:
        return bool(feature["nullable"])
    if feature["type"] == "category":
        return value in feature["levels"]
    if feature["type"] == "boolean":
        return isinstance(value, bool)
    return feature["minimum"] <= value <= feature["maximum"]


# -- the three tables --------------------------------------------------------------


def test_breast_cancer_names_become_identifiers_and_ranges_widen() -> None:
    table = breast_cancer()
    answers = infer_table(table, label="target").answers
    features = _features(answers)
    assert answers["label_column"] == "target" and answers["positive_class"] == "1"
    assert answers["entity_column"] == "" and answers["timestamp_column"] == ""
    assert len(features) == 30
    radius = features["mean_radius"]
    assert radius["column"] == "mean radius" and radius["type"] == "number"
    observed = table.column("mean radius").to_pylist()
    assert radius["minimum"] < min(observed) and radius["maximum"] > max(observed)
    assert radius["minimum"] >= 0  # a non-negative column stays non-negative
    assert not radius["nullable"] and "impute" not in radius
    example = answers["feature_schema"]["example"]
    assert list(example) == list(features)
    assert all(_is_valid(features[name], value) for name, value in example.items())


def test_penguins_strings_become_levels_and_nulls_are_imputed(tmp_path: Path) -> None:
    answers = infer_answers(
        penguins_csv(tmp_path), label="species", positive_class="Adelie"
    ).answers
    features = _features(answers)
    assert answers["data_source"] == str((tmp_path / "penguins.csv").resolve())
    assert answers["label_column"] == "species" and answers["positive_class"] == "Adelie"
    island = features["island"]
    assert island["type"] == "category" and island["unknown"] == "other"
    assert island["levels"] == ["Biscoe", "Dream", "Torgersen", "other"]
    assert features["sex"]["levels"] == ["female", "male", "other"]
    assert features["sex"]["nullable"] and features["sex"]["impute"] == "most_frequent"
    bill = features["bill_length_mm"]
    assert bill["type"] == "number" and bill["nullable"] and bill["impute"] == "median"
    assert features["body_mass_g"]["type"] == "integer"
    example = answers["feature_schema"]["example"]
    assert all(_is_valid(features[name], value) for name, value in example.items())
    assert None not in example.values()  # a complete row is preferred


def test_events_entity_and_timestamp_are_not_features(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(events(), path)
    answers = infer_answers(
        path, label="churned", entity="customer_id", timestamp="event_timestamp"
    ).answers
    features = _features(answers)
    assert answers["entity_column"] == "customer_id"
    assert answers["timestamp_column"] == "event_timestamp"
    assert list(features) == ["monthly_spend", "support_calls", "plan"]
    assert features["monthly_spend"]["column"] == "Monthly Spend ($)"
    assert features["support_calls"]["type"] == "integer"
    assert features["support_calls"]["minimum"] == 0
    assert features["plan"]["nullable"] and features["plan"]["levels"][-1] == "other"


def test_the_source_is_recorded_as_a_url_an_absolute_path_or_a_folder(tmp_path: Path) -> None:
    (tmp_path / "parts").mkdir()
    pq.write_table(events(), tmp_path / "parts" / "part-0.parquet")
    url = (tmp_path / "parts" / "part-0.parquet").as_uri()
    assert (
        infer_answers(url, label="churned", exclude=["event_timestamp"]).answers["data_source"]
        == url
    )
    folder = infer_answers(tmp_path / "parts", label="churned", timestamp="event_timestamp")
    assert folder.answers["data_source"] == f"{(tmp_path / 'parts').resolve()}/"
    inside = infer_answers(
        tmp_path / "parts", label="churned", timestamp="event_timestamp", repo=tmp_path
    )
    assert inside.answers["data_source"] == "parts/"


def test_only_the_most_frequent_levels_are_kept() -> None:
    cities = [f"city{i:02d}" for i in range(MAX_LEVELS + 5)]
    values = [city for n, city in enumerate(cities) for _ in range(len(cities) - n)]
    table = pa.table({"city": values, "y": [i % 2 for i in range(len(values))]})
    levels = _features(infer_table(table, label="y").answers)["city"]["levels"]
    assert levels == [*sorted(cities[:MAX_LEVELS]), "other"]


def test_identifiers_are_python_names_and_unique() -> None:
    taken: set[str] = set()
    names = [identifier(c, taken) for c in ["mean radius", "Mean-Radius", "1st", "class", ""]]
    assert names == ["mean_radius", "mean_radius_2", "f_1st", "class_", "feature"]
    assert all(name.isidentifier() for name in names)


def test_ranges_round_outward_with_a_margin() -> None:
    assert value_range(6.981, 28.11, integer=False) == (4.8, 30.3)
    assert value_range(-5.0, 5.0, integer=False) == (-6.0, 6.0)
    assert value_range(172, 231, integer=True) == (166, 237)
    assert value_range(0, 6, integer=True) == (0, 7)


def test_the_positive_class_can_be_chosen_and_defaults_to_the_rarer_class() -> None:
    table = pa.table({"x": [1.0, 2.0, 3.0, 4.0], "y": ["no", "yes", "no", "no"]})
    assert infer_table(table, label="y").answers["positive_class"] == "yes"
    table = pa.table({"x": [1.0, 2.0, 3.0, 4.0], "y": ["a", "b", "b", "b"]})
    assert infer_table(table, label="y").answers["positive_class"] == "a"
    assert infer_table(table, label="y", positive_class="b").answers["positive_class"] == "b"


def test_the_answers_validate_as_a_features_yaml(tmp_path: Path) -> None:
    """What the template renders from the answers loads with mlgen_runtime.schema, and
    the example row is valid for it."""
    schema_module = pytest.importorskip("mlgen_runtime.schema")
    pq.write_table(events(), tmp_path / "events.parquet")
    cases = [
        infer_table(breast_cancer(), label="target").answers,
        infer_answers(penguins_csv(tmp_path), label="species", positive_class="Adelie").answers,
        infer_answers(
            tmp_path / "events.parquet",
            label="churned",
            entity="customer_id",
            timestamp="event_timestamp",
        ).answers,
    ]
    for answers in cases:
        document = {
            "dataset": {
                "source": answers.get("data_source", ""),
                "label": answers["label_column"],
                "positive_class": answers["positive_class"],
                "entity": answers["entity_column"],
                "timestamp": answers["timestamp_column"],
            },
            **answers["feature_schema"],
        }
        schema = schema_module.schema_from_dict(document)
        assert schema.names == tuple(_features(answers))
        assert schema.to_matrix([answers["feature_schema"]["example"]]).shape == (
            1,
            len(schema.names),
        )


def test_a_boolean_label_and_boolean_features() -> None:
    table = pa.table({"flag": [True, False, True, None], "y": [True, False, False, True]})
    answers = infer_table(table, label="y").answers
    assert answers["positive_class"] == "true"
    flag = _features(answers)["flag"]
    assert flag["type"] == "boolean" and flag["impute"] == "most_frequent"
    assert answers["feature_schema"]["example"]["flag"] is True


# -- the command line: refusals --------------------------------------------------------


def _write(folder: Path, table: Any, name: str = "data.parquet") -> Path:
    path = folder / name
    if name.endswith(".csv"):
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


def _refused(tmp_path: Path, data: Path, *options: str) -> str:
    """Run ``mlgen new --data``; assert one Error line, exit 1, nothing written."""
    before = sorted(tmp_path.rglob("*"))
    repo = tmp_path / "repo"
    result = CliRunner().invoke(cli, ["new", str(repo), "--data", str(data), *options])
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert not repo.exists() and sorted(tmp_path.rglob("*")) == before
    return lines[0]


def _small(**columns: list[Any]) -> Any:
    return pa.table({"x": [1.0, 2.0, 3.0, 4.0], **columns, "y": [0, 1, 0, 1]})


def test_refuses_a_missing_label_column(tmp_path: Path) -> None:
    line = _refused(tmp_path, _write(tmp_path, _small()), "--label", "Y")
    assert "--label 'Y': no such column" in line and "did you mean 'y'?" in line


def test_refuses_a_label_that_is_not_binary(tmp_path: Path) -> None:
    table = pa.table({"x": [1.0, 2.0, 3.0], "species": ["Adelie", "Gentoo", "Chinstrap"]})
    line = _refused(tmp_path, _write(tmp_path, table), "--label", "species")
    assert "--label 'species' has 3 classes" in line
    assert "binary classification only, for now" in line
    assert "--positive-class (e.g. --positive-class Adelie)" in line


def test_a_class_against_the_rest_of_a_multi_class_label(tmp_path: Path) -> None:
    table = pa.table(
        {"x": [1.0, 2.0, 3.0, 4.0], "species": ["Adelie", "Gentoo", "Chinstrap", "Adelie"]}
    )
    answers = infer_table(table, label="species", positive_class="Gentoo").answers
    assert answers["label_column"] == "species" and answers["positive_class"] == "Gentoo"


def test_refuses_a_label_with_one_class(tmp_path: Path) -> None:
    table = pa.table({"x": [1.0, 2.0, 3.0], "y": [1, 1, 1]})
    assert "has 1 classes" in _refused(tmp_path, _write(tmp_path, table), "--label", "y")


def test_refuses_a_positive_class_the_label_lacks(tmp_path: Path) -> None:
    line = _refused(tmp_path, _write(tmp_path, _small()), "--label", "y", "--positive-class", "2")
    assert "--positive-class '2' is not a value of label 'y'; use one of 0, 1" in line


def test_refuses_a_constant_column_and_names_the_exclude(tmp_path: Path) -> None:
    data = _write(tmp_path, _small(region=["eu", "eu", "eu", "eu"]))
    line = _refused(tmp_path, data, "--label", "y")
    assert "column 'region': is constant" in line and "--exclude region" in line


def test_refuses_an_all_null_column(tmp_path: Path) -> None:
    data = _write(tmp_path, _small(**{"last login": pa.array([None] * 4, pa.float64())}))
    line = _refused(tmp_path, data, "--label", "y")
    assert "column 'last login': has no values" in line and "--exclude 'last login'" in line


def test_an_excluded_column_is_not_refused(tmp_path: Path) -> None:
    table = _small(region=["eu", "eu", "eu", "eu"])
    answers = infer_table(table, label="y", exclude=["region"]).answers
    assert list(_features(answers)) == ["x"]


def test_refuses_a_text_column_with_no_repeated_value(tmp_path: Path) -> None:
    table = pa.table({"name": [f"n{i}" for i in range(30)], "y": [i % 2 for i in range(30)]})
    line = _refused(tmp_path, _write(tmp_path, table), "--label", "y")
    assert "column 'name': every value is different" in line and "--entity name" in line


def test_refuses_a_csv_column_mixing_numbers_and_text(tmp_path: Path) -> None:
    data = tmp_path / "mixed.csv"
    data.write_text("age,y\n31,0\n45,1\nunknown,0\n28,1\n")
    line = _refused(tmp_path, data, "--label", "y")
    assert "column 'age': mixes numbers ('31') and text ('unknown')" in line
    assert "--exclude age" in line


def test_refuses_an_unreadable_file(tmp_path: Path) -> None:
    data = tmp_path / "events.parquet"
    data.write_text("this is not parquet\n")
    line = _refused(tmp_path, data, "--label", "y")
    assert str(data) in line and "not a readable parquet file" in line


@pytest.mark.parametrize(("name", "text"), [("empty.csv", ""), ("header.csv", "x,y\n")])
def test_refuses_an_empty_file(tmp_path: Path, name: str, text: str) -> None:
    data = tmp_path / name
    data.write_text(text)
    line = _refused(tmp_path, data, "--label", "y")
    assert str(data) in line and ("empty" in line or "no rows" in line)


def test_refuses_a_missing_file(tmp_path: Path) -> None:
    assert "no such file" in _refused(tmp_path, tmp_path / "nope.csv", "--label", "y")


def test_refuses_a_time_column_as_a_feature(tmp_path: Path) -> None:
    table = events().drop(["customer_id"])
    line = _refused(tmp_path, _write(tmp_path, table), "--label", "churned")
    assert "column 'event_timestamp' holds times" in line
    assert "--timestamp event_timestamp" in line


def test_refuses_one_column_in_two_roles(tmp_path: Path) -> None:
    line = _refused(tmp_path, _write(tmp_path, _small()), "--label", "y", "--entity", "y")
    assert "the column is given twice" in line


def test_data_needs_a_label_and_table_options_need_data(tmp_path: Path) -> None:
    data = _write(tmp_path, _small())
    result = CliRunner().invoke(cli, ["new", str(tmp_path / "r"), "--data", str(data)])
    assert result.exit_code == 2 and "--label COLUMN is required" in result.output
    result = CliRunner().invoke(cli, ["new", str(tmp_path / "r"), "--label", "y"])
    assert result.exit_code == 2 and "need --data PATH" in result.output
    assert not (tmp_path / "r").exists()


def test_a_schema_answer_is_not_taken_twice(tmp_path: Path) -> None:
    data = _write(tmp_path, _small())
    line = _refused(tmp_path, data, "--label", "y", "-d", "label_column=x")
    assert "label_column: is inferred from --data" in line


def test_schema_infer_refuses_before_touching_the_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "src" / "demo_model").mkdir(parents=True)
    features = repo / "src" / "demo_model" / "features.yaml"
    features.write_text("features: []\n")
    data = _write(tmp_path, _small(region=["eu"] * 4))
    result = CliRunner().invoke(
        cli, ["schema", "infer", str(data), "--label", "y", "--repo", str(repo)]
    )
    assert result.exit_code == 1 and "column 'region': is constant" in result.output
    assert features.read_text() == "features: []\n"


# -- mlgen schema infer in a generated repository ----------------------------------------


def _git(repo: Path, *arguments: str) -> str:
    import subprocess

    identity = ["-c", "user.email=t@example.com", "-c", "user.name=t"]
    done = subprocess.run(
        ["git", *identity, *arguments], cwd=repo, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.mark.slow
def test_schema_infer_rewrites_the_schema_answers_and_nothing_on_a_conflict(
    tmp_path: Path,
) -> None:
    import yaml

    repo = tmp_path / "repo"
    created = CliRunner().invoke(cli, ["new", str(repo), "--defaults"])
    assert created.exit_code == 0, created.output
    assert "Data: the synthetic churn demo table" in created.output
    (repo / "data").mkdir()
    pq.write_table(events(), repo / "data" / "events.parquet")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "generated")
    features = repo / "src" / "demo_model" / "features.yaml"

    table = str(repo / "data" / "events.parquet")
    infer = ["schema", "infer", table, "--repo", str(repo), "--label", "churned"]
    result = CliRunner().invoke(
        cli, [*infer, "--entity", "customer_id", "--timestamp", "event_timestamp"]
    )
    assert result.exit_code == 0, result.output
    assert "updated       src/demo_model/features.yaml" in result.output
    written = yaml.safe_load(features.read_text())
    assert written["dataset"]["source"] == "data/events.parquet"  # relative to the repo
    assert [f["name"] for f in written["features"]] == ["monthly_spend", "support_calls", "plan"]
    answers = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    assert answers["data_source"] == "data/events.parquet"
    assert answers["entity_column"] == "customer_id"

    # The inferred answers survive the answers file: an update re-renders the same files.
    _git(repo, "commit", "-qam", "re-inferred")
    from mlgen.update import plan_update

    plan = plan_update(repo)
    assert plan.paths("updated") == [] and plan.paths("merged") == [], plan.changes

    # A local edit of the schema that the new inference would overwrite: refused, no write.
    text = features.read_text()
    assert '"team"' in text
    features.write_text(text.replace('"team"', '"teams"'))
    _git(repo, "commit", "-qam", "a local edit")
    before = _git(repo, "rev-parse", "HEAD:src/demo_model/features.yaml")
    result = CliRunner().invoke(
        cli, [*infer, "--timestamp", "event_timestamp", "--exclude", "plan"]
    )
    assert result.exit_code == 1
    assert "src/demo_model/features.yaml: your edits conflict" in result.output
    assert _git(repo, "status", "--porcelain") == ""
    assert _git(repo, "rev-parse", "HEAD:src/demo_model/features.yaml") == before
