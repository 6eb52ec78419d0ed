"""mlgen_runtime.export.onnx with real LightGBM, XGBoost, onnxmltools and ONNX Runtime.

Runs in an environment that has them: mlgen's slow tier runs this file in the
environment of the generated LightGBM and XGBoost repositories (the runtime's own
integration environment has neither, and skips it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

lightgbm = pytest.importorskip("lightgbm")
xgboost = pytest.importorskip("xgboost")
pytest.importorskip("onnxmltools")

from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from mlgen_runtime.export import onnx as onnx_export  # noqa: E402

FEATURES = ("tenure_months", "monthly_charges", "support_calls", "contract_type")
TRAIN = 1000


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """Rounded features, as real tables have. Models fit on the first :data:`TRAIN` rows
    and predict all of them: held-out values that equal a threshold rounded up to float32
    are the case a float32 graph gets wrong without :func:`float32_thresholds`."""
    generator = np.random.default_rng(11)
    X = np.column_stack(
        [
            np.round(generator.uniform(0, 120, 3000), 1),
            np.round(generator.gamma(4, 20, 3000), 2),
            generator.poisson(2, 3000),
            generator.integers(0, 3, 3000),
        ]
    ).astype(np.float32)
    logit = 0.02 * X[:, 1] - 0.03 * X[:, 0] + 0.5 * X[:, 2] - 0.8 * X[:, 3]
    y = (generator.uniform(size=3000) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return X, y


def _classifiers(seed: int = 3) -> dict[str, Any]:
    return {
        "lightgbm": lightgbm.LGBMClassifier(
            n_estimators=200, num_leaves=15, random_state=seed, n_jobs=1, verbose=-1
        ),
        "xgboost": xgboost.XGBClassifier(
            n_estimators=200, max_depth=4, random_state=seed, n_jobs=1
        ),
    }


@pytest.mark.parametrize("name", ["lightgbm", "xgboost"])
@pytest.mark.parametrize("in_pipeline", [False, True])
def test_exported_trees_predict_what_the_library_predicts(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray], name: str, in_pipeline: bool
) -> None:
    X, y = data
    classifier = _classifiers()[name]
    # (A pipeline step: a scaler before trees would move inputs across split thresholds,
    # as its float32 arithmetic in ONNX differs from NumPy's in the last bit.)
    model = Pipeline([("trees", classifier)]) if in_pipeline else classifier
    model.fit(X[:TRAIN], y[:TRAIN])
    path = onnx_export.export_sklearn(
        model, tmp_path / "model.onnx", feature_names=FEATURES, name="churn"
    )
    exported = onnx_export.load(path, feature_names=FEATURES)(X)
    in_process = model.predict_proba(X)[:, 1]
    assert np.abs(exported - in_process).max() < 1e-5


def test_float32_thresholds_leave_the_model_alone_and_predict_the_same(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = data
    model = _classifiers()["lightgbm"].fit(X[:TRAIN], y[:TRAIN])
    before = model.booster_.model_to_string()
    adjusted = onnx_export.float32_thresholds(model)
    assert adjusted is not model and model.booster_.model_to_string() == before
    assert adjusted.booster_.model_to_string() != before
    np.testing.assert_array_equal(adjusted.predict_proba(X), model.predict_proba(X))
    xgb = _classifiers()["xgboost"].fit(X, y)
    assert onnx_export.float32_thresholds(xgb) is xgb  # XGBoost splits in float32 already


def test_converters_are_registered_for_the_boosted_trees_only(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = data
    classifiers = _classifiers()
    for classifier in classifiers.values():
        classifier.fit(X, y)
    assert onnx_export.register_converters(classifiers["lightgbm"]) == ["LightGbmLGBMClassifier"]
    in_pipeline = Pipeline([("scale", StandardScaler()), ("trees", classifiers["xgboost"])])
    assert onnx_export.register_converters(in_pipeline) == ["XGBoostXGBClassifier"]
    assert onnx_export.register_converters(StandardScaler()) == []
