"""mlgen_runtime.backends.kserve's request checks on a small schema (needs ``kserve``).

The model server itself (REST, gRPC, metrics, a model that cannot load) runs in the KServe
example backend's generated suite, where ``kserve`` is installed."""

from __future__ import annotations

import numpy as np
import pytest

from mlgen_runtime.schema import Feature, FeatureSchema

kserve_backend = pytest.importorskip("mlgen_runtime.backends.kserve", exc_type=ImportError)
InvalidInput = pytest.importorskip("kserve.errors").InvalidInput
InferInput = pytest.importorskip("kserve").InferInput
InferRequest = pytest.importorskip("kserve").InferRequest

SCHEMA = FeatureSchema(
    features=(Feature("age", "numeric", 0, 120, "Age."), Feature("plan", "categorical", 0, 2, "")),
    example={"age": 30.0, "plan": 1.0},
)


def v2(matrix: np.ndarray, name: str = "features", datatype: str = "FP32") -> object:
    tensor = InferInput(name, list(matrix.shape), datatype, matrix.ravel().tolist())
    return InferRequest("m", [tensor], request_id="t")


def test_v1_rows_by_name_and_by_position_give_the_same_matrix() -> None:
    by_name = kserve_backend.v1_features({"instances": [{"plan": 2, "age": 5}]}, SCHEMA, 8)
    by_position = kserve_backend.v1_features({"instances": [[5, 2]]}, SCHEMA, 8)
    np.testing.assert_array_equal(by_name, by_position)
    assert by_name.dtype == np.float32 and by_name.tolist() == [[5.0, 2.0]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"instances": []}, "at least one row"),
        ({"instances": [[1.0, 1.0]] * 3}, "at most 2 rows"),
        ({"instances": [[1.0]]}, "expected 2 values"),
        ({"instances": [{"age": True, "plan": 0}]}, "must be a number"),
        ({"instances": [[1.0, 1.0]], "extra": 1}, "unknown field"),
        ([1.0], "instances"),
    ],
)
def test_v1_bodies_are_refused(body: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        kserve_backend.v1_features(body, SCHEMA, 2)


def test_v2_tensor_name_datatype_and_shape_are_checked() -> None:
    matrix = np.array([[30.0, 1.0]], dtype=np.float32)
    assert kserve_backend.v2_features(v2(matrix), SCHEMA, "features", 8).tolist() == [[30.0, 1.0]]
    for request, message in [
        (v2(matrix, name="x"), "named 'features'"),
        (v2(matrix.astype(np.float64), datatype="FP64"), "datatype FP32"),
        (v2(matrix[:, :1]), r"shape \[n, 2\]"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            kserve_backend.v2_features(request, SCHEMA, "features", 8)


@pytest.mark.parametrize(
    ("row", "message"),
    [([121.0, 1.0], "age must be between"), ([1.0, 0.5], "integer codes"), ([np.nan, 1], "finite")],
)
def test_values_outside_the_schema_name_the_row(row: list[float], message: str) -> None:
    kserve_backend.check_matrix(SCHEMA, np.array([[1.0, 1.0]]))
    with pytest.raises(InvalidInput, match=message):
        kserve_backend.check_matrix(SCHEMA, np.array([[1.0, 1.0], row]))


def test_requested_outputs_are_checked_and_default_to_all() -> None:
    from kserve.protocol.infer_type import RequestedOutput

    request = v2(np.array([[30.0, 1.0]], dtype=np.float32))
    assert kserve_backend.requested_outputs(request) == ["probabilities", "label"]
    request.request_outputs = [RequestedOutput("label")]
    assert kserve_backend.requested_outputs(request) == ["label"]
    request.request_outputs = [RequestedOutput("probability")]
    with pytest.raises(InvalidInput, match="unknown output 'probability'"):
        kserve_backend.requested_outputs(request)


RAW = FeatureSchema(
    features=(
        Feature("island", "category", levels=("Biscoe", "Dream", "other"), unknown="other"),
        Feature(
            "sex", "category", levels=("female", "male"), nullable=True, impute="most_frequent"
        ),
        Feature("mass", "number", 2000, 7000, nullable=True, impute="median"),
    ),
    example={"island": "Dream", "sex": "male", "mass": 3000.0},
)


def raw_request(**columns: tuple[str, list[object]]) -> object:
    tensors = [
        InferInput(name, [len(data)], datatype, data) for name, (datatype, data) in columns.items()
    ]
    return InferRequest("m", tensors, request_id="t")


def test_raw_v2_tensors_give_the_columns_with_nulls() -> None:
    reader = kserve_backend.InputReader(RAW, 8)
    request = raw_request(
        island=("BYTES", ["Atlantis", "Dream"]),
        sex=("BYTES", ["", "male"]),
        mass=("FP32", [None, 3e3]),
    )
    columns = kserve_backend.v2_columns(request, reader)
    assert columns["island"].tolist() == ["Atlantis", "Dream"]
    assert columns["sex"].tolist() == [None, "male"]
    assert np.isnan(columns["mass"][0]) and columns["mass"][1] == 3000.0


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            {"island": ("BYTES", ["Dream"]), "sex": ("BYTES", ["x"]), "mass": ("FP32", [3e3])},
            "'sex'",
        ),
        ({"island": ("FP32", [1.0]), "sex": ("BYTES", [""]), "mass": ("FP32", [3e3])}, "'island'"),
        ({"island": ("BYTES", ["Dream"]), "sex": ("BYTES", [""])}, "missing input 'mass'"),
    ],
)
def test_raw_v2_tensors_are_refused_naming_the_input(
    columns: dict[str, tuple[str, list[object]]], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        kserve_backend.v2_columns(raw_request(**columns), kserve_backend.InputReader(RAW, 8))


def test_raw_v1_rows_are_checked_by_feature() -> None:
    row = {"island": "Atlantis", "sex": None, "mass": 3000}
    assert kserve_backend.v1_columns({"instances": [row]}, RAW, 8) == {
        "island": ["Atlantis"],
        "sex": [None],
        "mass": [3000],
    }
    with pytest.raises(InvalidInput, match=r"row 0: sex must be one of \['female', 'male'\]"):
        kserve_backend.v1_columns({"instances": [{**row, "sex": "x"}]}, RAW, 8)
    with pytest.raises(InvalidInput, match="missing feature 'mass'"):
        kserve_backend.v1_columns({"instances": [{"island": "Dream", "sex": None}]}, RAW, 8)
