"""mlgen_runtime.export.onnx with real scikit-learn, skl2onnx and ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mlgen_runtime.export import onnx as onnx_export

FEATURES = ("tenure_months", "monthly_charges", "autopay")


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(7)
    X = generator.normal(size=(400, len(FEATURES))).astype(np.float32)
    y = (X @ np.array([1.5, -2.0, 0.5]) + generator.normal(size=400) > 0).astype(np.int64)
    return X, y


@pytest.fixture(scope="module")
def pipeline(data: tuple[np.ndarray, np.ndarray]) -> Pipeline:
    model = Pipeline([("scale", StandardScaler()), ("classifier", LogisticRegression())])
    return model.fit(*data)


def test_exported_graph_predicts_what_scikit_learn_predicts(
    tmp_path: Path, pipeline: Pipeline, data: tuple[np.ndarray, np.ndarray]
) -> None:
    path = onnx_export.export_sklearn(
        pipeline,
        tmp_path / "model.onnx",
        feature_names=FEATURES,
        name="churn",
        metadata={"package_version": "1.2.3"},
    )
    predict = onnx_export.load(path, feature_names=FEATURES)
    X = data[0][:100]
    expected = pipeline.predict_proba(X)[:, 1]
    assert np.max(np.abs(predict(X) - expected)) < 1e-5
    properties = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(properties[onnx_export.FEATURE_NAMES_KEY]) == list(FEATURES)
    assert properties["package_version"] == "1.2.3"
    outputs = [o.name for o in onnx_export.session(path).get_outputs()]
    assert outputs == [onnx_export.LABEL_OUTPUT, onnx_export.PROBABILITIES_OUTPUT]


def test_a_model_of_other_features_is_refused(tmp_path: Path, pipeline: Pipeline) -> None:
    path = onnx_export.export_sklearn(
        pipeline, tmp_path / "model.onnx", feature_names=("a", "b", "c"), name="churn"
    )
    with pytest.raises(ValueError, match=r"trained on features \['a', 'b', 'c'\].*retrain"):
        onnx_export.load(path, feature_names=FEATURES)


def test_a_model_of_another_width_is_refused(tmp_path: Path, pipeline: Pipeline) -> None:
    path = onnx_export.export_sklearn(
        pipeline, tmp_path / "model.onnx", feature_names=FEATURES, name="churn"
    )
    with pytest.raises(ValueError, match="with 4 columns"):
        onnx_export.load(path, feature_names=(*FEATURES, "extra"))
