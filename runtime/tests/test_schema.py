"""The feature schema: validation of features, rows and the input matrix."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mlgen_runtime.schema import Feature, FeatureSchema

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
        (("x", "text", 0, 1, ""), "unknown kind"),
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
