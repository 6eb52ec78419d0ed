"""The feature schema: validation of features, rows and the input matrix."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from mlgen_runtime.schema import (
    Feature,
    FeatureSchema,
    SchemaError,
    dump_schema,
    load_schema,
    parse_schema,
)

SCHEMA = FeatureSchema(
    features=(
        Feature("age", "numeric", 0, 120, "Age in years."),
        Feature("plan", "categorical", 0, 2, "Plan code."),
    ),
    example={"age": 30.0, "plan": 1.0},
)


def test_matrix_is_float32_in_schema_order() -> None:
    matrix = SCHEMA.to_matrix([{"plan": 2, "age": 40}, SCHEMA.example_row()])
    assert matrix.dtype == np.float32
    assert matrix.flags["C_CONTIGUOUS"]
    assert matrix.tolist() == [[40.0, 2.0], [30.0, 1.0]]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"age": 1}, "row 0: missing feature(s) plan"),
        ({"age": 1, "plan": 0, "x": 1}, "row 0: unknown feature(s) x"),
        ({"age": 121, "plan": 0}, "age must be between 0 and 120, got 121"),
        ({"age": float("nan"), "plan": 0}, "age must be a finite number"),
        ({"age": 1, "plan": 0.5}, "plan must be one of the integer codes [0, 1, 2]"),
    ],
)
def test_bad_rows_name_the_feature(row: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        SCHEMA.to_matrix([row])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("bad name", "numeric", 0, 1, ""), "must be a Python identifier"),
        (("x", "text", 0, 1, ""), "unknown type"),
        (("x", "numeric", 1, 1, ""), "minimum must be below maximum"),
        (("x", "categorical", 0, 1.5, ""), "categorical bounds must be integers"),
    ],
)
def test_bad_features_are_refused(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Feature(*args)


def test_schema_refuses_duplicates_and_a_bad_example() -> None:
    age = Feature("age", "numeric", 0, 1, "")
    with pytest.raises(ValueError, match="duplicate feature name"):
        FeatureSchema((age, age))
    with pytest.raises(ValueError, match="age must be between"):
        FeatureSchema((age,), example={"age": 5})


def test_example_row_defaults_to_midpoints() -> None:
    schema = FeatureSchema(SCHEMA.features)
    assert schema.example_row() == {"age": 60.0, "plan": 1.0}
    assert schema.names == ("age", "plan")
    assert schema.width == 2
    assert schema.feature("plan").levels == (0, 1, 2)


SCHEMA_FILE = """\
dataset:
  source: data/events.parquet
  label: churned
  positive_class: 1
  entity: customer_id
  timestamp: event_timestamp
  entity_name: customer
  feature_view: customer_features
features:
  - name: tenure_months
    column: "tenure months"
    type: number
    minimum: 0
    maximum: 120
    nullable: true
    impute: median
    description: Months since sign-up.
  - name: island
    type: category
    levels: [Biscoe, Dream, Torgersen, other]
    unknown: other
    description: Island.
  - name: autopay
    type: boolean
example:
  tenure_months: 7
  island: Torgersen
  autopay: true
"""


def test_a_schema_file_loads_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "features.yaml"
    path.write_text(SCHEMA_FILE)
    schema = load_schema(path)
    assert schema.dataset is not None
    assert schema.dataset.positive_class == "1"
    assert schema.columns["tenure_months"] == "tenure months"
    assert [f.kind for f in schema.features] == ["numeric", "categorical", "categorical"]
    rows = [schema.example_row(), {"tenure_months": None, "island": "Mars", "autopay": 0}]
    assert schema.to_matrix(rows).tolist()[0] == [7.0, 2.0, 1.0]
    assert np.isnan(schema.to_matrix(rows)[1, 0])
    assert schema.to_matrix(rows)[1, 1] == 3.0  # unknown: other
    assert parse_schema(dump_schema(schema)) == schema


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "type: category",
            "type: text",
            "features.yaml:19: features[1].type: must be one of number, integer, category,"
            " boolean, got 'text'",
        ),
        ("minimum: 0\n", "minimum: 0\n    bogus: 1\n", "features.yaml:14: features[0].bogus:"),
        ("impute: median", "impute: mean", "features.yaml:16: features[0].impute: must be one"),
        ("    maximum: 120\n", "", "features.yaml:10: features[0].maximum: is required"),
        ("[Biscoe, Dream,", "[Biscoe, Biscoe,", "features.yaml:20: features[1].levels: duplicate"),
        (
            "unknown: other",
            "unknown: other\n    nullable: false\n    impute: median",
            ":23: features[1].impute: impute needs nullable",
        ),
        ("  island: Torgersen", "  island: 3", "features.yaml:27: example.island: island must"),
        ("label: churned", "label: tenure months", "features.yaml:3: dataset.label: column"),
        ("customer_features", "a-b", "features.yaml:8: dataset.feature_view: must be an"),
        ("[Biscoe", "{Biscoe", "features.yaml:20: not valid YAML"),
    ],
)
def test_a_bad_schema_file_is_one_line_naming_key_and_line(
    old: str, new: str, message: str
) -> None:
    assert old in SCHEMA_FILE
    with pytest.raises(SchemaError) as caught:
        parse_schema(SCHEMA_FILE.replace(old, new, 1))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_columns_become_the_matrix_with_codes_and_nans(tmp_path: Path) -> None:
    path = tmp_path / "features.yaml"
    path.write_text(SCHEMA_FILE)
    schema = load_schema(path)
    columns = {
        "tenure_months": [1.0, None, 3.0],
        "island": ["Dream", "Biscoe", "Mars"],
        "autopay": [True, False, True],
    }
    matrix = schema.columns_to_matrix(columns)
    assert matrix.dtype == np.float32 and matrix.shape == (3, 3)
    assert matrix[0].tolist() == [1.0, 1.0, 1.0]
    assert np.isnan(matrix[1, 0]) and matrix[1, 1:].tolist() == [0.0, 0.0]
    assert matrix[2, 1] == 3.0  # "Mars" is unknown: the level "other"


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("autopay", [True, None], "feature 'autopay' has 1 null values; set nullable: true"),
        ("tenure_months", [1.0, 500.0], "feature 'tenure_months' has 1 values outside [0, 120]"),
        ("tenure_months", [1.0, "many"], "feature 'tenure_months' has non-numeric values"),
        ("island", ["Dream", 3], "feature 'island' has non-text values"),
    ],
)
def test_a_bad_column_is_one_line_naming_the_feature(
    tmp_path: Path, column: str, values: list[object], message: str
) -> None:
    path = tmp_path / "features.yaml"
    path.write_text(SCHEMA_FILE)
    schema = load_schema(path)
    columns: dict[str, list[object]] = {
        "tenure_months": [1.0, 2.0],
        "island": ["Dream", "Biscoe"],
        "autopay": [True, False],
    }
    columns[column] = values
    with pytest.raises(ValueError, match=re.escape(message)):
        schema.columns_to_matrix(columns)


def test_text_levels_rejected_unless_unknown_maps_to_other() -> None:
    plan = Feature("plan", "category", levels=("basic", "premium"), description="Plan.")
    with pytest.raises(ValueError, match=re.escape("feature 'plan' has 1 values outside its")):
        FeatureSchema((plan,)).columns_to_matrix({"plan": ["basic", "gold"]})
    assert plan.problem("gold") == "plan must be one of ['basic', 'premium'], got 'gold'"
    with pytest.raises(ValueError, match="unknown: other needs a level named 'other'"):
        Feature("plan", "category", levels=("basic", "premium"), unknown="other")
