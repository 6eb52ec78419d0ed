"""ONNX export with preprocessing (real skl2onnx, ONNX Runtime; LightGBM and XGBoost with
onnxmltools where installed): raw values in, the in-process model's probabilities out."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mlgen_runtime.export import onnx as onnx_export
from mlgen_runtime.export.preprocessing import Preprocessed, Preprocessing
from mlgen_runtime.schema import parse_schema

sys.path.insert(0, str(Path(__file__).parents[1]))  # raw_support, beside the light tests
from raw_support import SCHEMA, raw_rows, table

TOLERANCE = 1e-5


def classifier(kind: str, X: np.ndarray, y: np.ndarray) -> Any:
    if kind == "sklearn":
        steps = [("scale", StandardScaler()), ("classifier", LogisticRegression(max_iter=500))]
        return Pipeline(steps).fit(X, y)
    if kind == "lightgbm":
        lightgbm = pytest.importorskip("lightgbm")
        pytest.importorskip("onnxmltools")
        return lightgbm.LGBMClassifier(n_estimators=40, num_leaves=4, verbose=-1).fit(X, y)
    xgboost = pytest.importorskip("xgboost")
    pytest.importorskip("onnxmltools")
    return xgboost.XGBClassifier(n_estimators=40, max_depth=2, n_jobs=1).fit(X, y)


def labels(data: dict[str, list[Any]]) -> np.ndarray:
    """A learnable label of the raw table (islands and bill length matter)."""
    island = np.array([value in ("Dream", "Torgersen") for value in data["island"]])
    bill = np.array([40.0 if value is None else value for value in data["bill_length_mm"]])
    return (island ^ (bill > 46)).astype(np.int64)


@pytest.fixture(scope="module", params=["sklearn", "lightgbm", "xgboost"])
def exported(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Preprocessed, Any]:
    data = table(600, seed=2)
    preprocessing = Preprocessing.fit(SCHEMA.features, data)
    model = Preprocessed(
        preprocessing, classifier(request.param, preprocessing.encode(data), labels(data))
    )
    path = onnx_export.export_sklearn(
        model,
        tmp_path_factory.mktemp(request.param) / "model.onnx",
        feature_names=SCHEMA.names,
        name="penguins",
    )
    return model, onnx_export.load(path, feature_names=SCHEMA.names)


def test_the_graph_takes_raw_inputs_named_after_the_features(tmp_path: Path) -> None:
    data = table(200)
    preprocessing = Preprocessing.fit(SCHEMA.features, data)
    model = Preprocessed(
        preprocessing, classifier("sklearn", preprocessing.encode(data), labels(data))
    )
    path = onnx_export.export_sklearn(
        model, tmp_path / "m.onnx", feature_names=SCHEMA.names, name="p"
    )
    session = onnx_export.session(path)
    assert [(i.name, i.type, i.shape[1]) for i in session.get_inputs()] == [
        ("island", "tensor(string)", 1),
        ("sex", "tensor(string)", 1),
        ("bill_length_mm", "tensor(float)", 1),
        ("flipper_length_mm", "tensor(float)", 1),
        ("tagged", "tensor(float)", 1),
    ]
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]


def test_exported_equals_in_process_on_the_raw_table(exported: tuple[Preprocessed, Any]) -> None:
    model, predict = exported
    data = table(500, seed=9)
    expected = model.predict_proba(data)[:, 1]
    assert float(np.max(np.abs(predict(data) - expected))) < TOLERANCE
    rows = raw_rows(50, seed=10)
    coded = SCHEMA.to_matrix(rows)  # codes and NaN, as data.dataset() gives training
    assert float(np.max(np.abs(predict(coded) - predict(rows)))) == 0.0
    assert float(np.max(np.abs(predict(rows) - model.predict_proba(coded)[:, 1]))) < TOLERANCE


def test_nulls_are_imputed_and_unknowns_are_other_in_the_graph(
    exported: tuple[Preprocessed, Any],
) -> None:
    model, predict = exported
    island, sex, bill, *_ = model.preprocessing.columns
    row = {
        "island": None,
        "sex": None,
        "bill_length_mm": None,
        "flipper_length_mm": 200.0,
        "tagged": 1,
    }
    filled = {
        **row,
        "island": island.levels[int(island.fill)],  # type: ignore[index,arg-type]
        "sex": sex.levels[int(sex.fill)],  # type: ignore[index,arg-type]
        "bill_length_mm": bill.fill,
    }
    assert predict([row])[0] == predict([filled])[0]
    assert (
        predict([{**filled, "island": "Atlantis"}])[0]
        == predict([{**filled, "island": "other"}])[0]
    )
    expected = model.predict_proba({name: [row[name]] for name in SCHEMA.names})[0, 1]
    assert abs(predict([row])[0] - expected) < TOLERANCE


def test_any_feature_name_works_but_an_output_name(tmp_path: Path) -> None:
    text = """\
features:
  - name: variable
    type: number
    minimum: 0
    maximum: 10
    nullable: true
  - name: {second}
    type: category
    levels: [a, b]
"""
    data = {"variable": [1.0, None, 3.0, 4.0] * 10, "probability_tensor": ["a", "b"] * 20}
    schema = parse_schema(text.format(second="probability_tensor"))
    preprocessing = Preprocessing.fit(schema.features, data)
    model = Preprocessed(
        preprocessing, classifier("sklearn", preprocessing.encode(data), np.arange(40) % 2)
    )
    path = onnx_export.export_sklearn(
        model, tmp_path / "m.onnx", feature_names=schema.names, name="n"
    )
    predict = onnx_export.load(path, feature_names=schema.names)
    assert float(np.max(np.abs(predict(data) - model.predict_proba(data)[:, 1]))) < TOLERANCE
    clash = parse_schema(text.format(second="label"))
    data["label"] = data.pop("probability_tensor")
    preprocessing = Preprocessing.fit(clash.features, data)
    model = Preprocessed(
        preprocessing, classifier("sklearn", preprocessing.encode(data), np.arange(40) % 2)
    )
    with pytest.raises(ValueError, match="feature 'label' has the name of a model output"):
        onnx_export.export_sklearn(model, tmp_path / "c.onnx", feature_names=clash.names, name="n")
    assert not (tmp_path / "c.onnx").exists()


def test_a_raw_model_refuses_another_schema(
    tmp_path: Path, exported: tuple[Preprocessed, Any]
) -> None:
    model, _ = exported
    path = onnx_export.export_sklearn(
        model, tmp_path / "m.onnx", feature_names=SCHEMA.names, name="p"
    )
    with pytest.raises(ValueError, match="retrain"):
        onnx_export.load(path, feature_names=[*SCHEMA.names[:-1], "other"])
