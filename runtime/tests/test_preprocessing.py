"""mlgen_runtime.export.preprocessing without ONNX: fitting, encoding, its one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from raw_support import PREPROCESSING, SCHEMA, table

from mlgen_runtime.export.preprocessing import (
    Column,
    Preprocessing,
    needs_preprocessing,
    raw_rows,
)
from mlgen_runtime.schema import Feature, parse_schema


def test_imputation_values_come_from_the_training_table() -> None:
    data = table()
    island, sex, bill, flipper, tagged = PREPROCESSING.columns
    known = [value for value in data["island"] if value is not None]
    most = max(("Biscoe", "Dream", "Torgersen"), key=known.count)
    assert (island.fill, island.impute) == (float(island.levels.index(most)), "most_frequent")  # type: ignore[union-attr]
    assert (sex.fill, sex.impute) == (1.0, "constant")  # fill_value male: code 1
    present = [value for value in data["bill_length_mm"] if value is not None]
    assert bill.fill == pytest.approx(float(np.float32(np.median(present))))
    assert flipper.fill is None and tagged.fill is None and tagged.levels is None


def test_encode_maps_levels_unknowns_and_nulls() -> None:
    rows = {
        "island": ["Dream", "Atlantis", None],
        "sex": ["female", None, "male"],
        "bill_length_mm": [40.0, None, float("nan")],
        "flipper_length_mm": [190, 200, 210],
        "tagged": [True, False, True],
    }
    island, _, bill, *_ = PREPROCESSING.columns
    encoded = PREPROCESSING.encode(rows)
    assert encoded.dtype == np.float32 and encoded.shape == (3, 5)
    np.testing.assert_array_equal(encoded[:, 0], [1.0, 3.0, island.fill])  # Atlantis: other
    np.testing.assert_array_equal(encoded[:, 1], [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(encoded[:, 2], np.float32([40.0, bill.fill, bill.fill]))
    np.testing.assert_array_equal(encoded[:, 4], [1.0, 0.0, 1.0])
    codes = PREPROCESSING.codes(rows)
    assert np.isnan(codes[2, 0]) and np.isnan(codes[1, 2]) and np.isnan(codes[1, 1])


def test_the_coded_matrix_encodes_as_the_raw_table() -> None:
    data = table(50, seed=3)
    raw = {name: data[name] for name in SCHEMA.names}
    rows = [{name: data[name][i] for name in SCHEMA.names} for i in range(50)]
    coded = SCHEMA.to_matrix(rows)
    np.testing.assert_array_equal(PREPROCESSING.encode(coded), PREPROCESSING.encode(raw))


def test_json_round_trip() -> None:
    assert Preprocessing.from_json(PREPROCESSING.to_json()) == PREPROCESSING


def test_a_numeric_schema_needs_nothing() -> None:
    features = (Feature("a", "number", 0, 10), Feature("b", "categorical", 0, 2))
    assert not needs_preprocessing(features) and needs_preprocessing(SCHEMA.features)
    X = np.array([[1.5, 2.0], [3.0, 0.0]], dtype=np.float32)
    preprocessing = Preprocessing.fit(features, X)
    assert preprocessing.identity
    np.testing.assert_array_equal(preprocessing.encode(X), X)


SMALL = """\
features:
  - name: color
    type: category
    levels: [red, blue]
    unknown: reject
    nullable: {nullable}
  - name: size
    type: number
    minimum: 0
    maximum: 9
    nullable: true
    impute: {impute}
"""


@pytest.mark.parametrize(
    ("nullable", "impute", "data", "message"),
    [
        ("false", "median", {"color": ["red", None], "size": [1, 2]}, "'color': 1 null value"),
        ("true", "median", {"color": ["red", "green"], "size": [1, 2]}, "'green' is not one of"),
        ("true", "median", {"color": ["red", "blue"], "size": [None, None]}, "every training"),
        ("true", "median", {"color": ["red", "blue"], "size": ["a", 2]}, "'size': not a number"),
    ],
)
def test_bad_training_data_is_one_line_naming_the_feature(
    nullable: str, impute: str, data: dict[str, list[object]], message: str
) -> None:
    schema = parse_schema(SMALL.format(nullable=nullable, impute=impute))
    with pytest.raises(ValueError, match=message) as error:
        Preprocessing.fit(schema.features, data)
    assert "\n" not in str(error.value)


def test_an_unknown_code_in_a_coded_matrix_is_refused() -> None:
    column = Column("color", ("red", "blue"))
    with pytest.raises(ValueError, match=r"code 5 is not one of the codes 0\.\.1"):
        column.codes(np.array([0.0, 5.0]))


def test_raw_rows_invert_the_coded_matrix() -> None:
    rows = [
        {
            "island": "Dream",
            "sex": None,
            "bill_length_mm": None,
            "flipper_length_mm": 190.0,
            "tagged": True,
        },
        {
            "island": "other",
            "sex": "male",
            "bill_length_mm": 41.5,
            "flipper_length_mm": 200.0,
            "tagged": False,
        },
    ]
    assert raw_rows(SCHEMA.features, SCHEMA.to_matrix(rows)) == rows
    with pytest.raises(ValueError, match="expected a matrix of 5 columns"):
        raw_rows(SCHEMA.features, np.zeros((2, 3)))
