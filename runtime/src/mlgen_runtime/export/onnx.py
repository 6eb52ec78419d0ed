"""scikit-learn-style models as ONNX graphs: export with skl2onnx, load with ONNX Runtime.

The graph every mlgen ONNX backend serves has one input (float32,
``[batch, n_features]``), a ``label`` output (int64, ``[batch]``) and a probabilities
output (float32, ``[batch, classes]``); the feature names are stored in the model's
metadata, so a server refuses an artifact trained on another schema.

Usage (a repository's ``modeling.py``)::

    from mlgen_runtime.export import onnx as onnx_export

    path = onnx_export.export_sklearn(pipeline, out_dir / "model.onnx",
                                      feature_names=FEATURE_NAMES, name=MODEL_NAME)
    predict = onnx_export.load(path, feature_names=FEATURE_NAMES)
    predict(matrix)        # positive-class probabilities, shape (n,)

Needs the ``onnx`` extra (onnx, onnxruntime, skl2onnx). skl2onnx is imported only by
:func:`export_sklearn`, so a server that only loads models never imports it. LightGBM's
``LGBMClassifier`` and XGBoost's ``XGBClassifier`` (alone or as a pipeline's last step)
export the same way: :func:`register_converters` registers onnxmltools' converters for
them with skl2onnx (the repository then needs ``onnxmltools``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlgen_runtime.export import replaced_atomically
from mlgen_runtime.export.preprocessing import (
    METADATA_KEY,
    Column,
    Preprocessed,
    Preprocessing,
    feeds,
)

INPUT_NAME = "features"
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"
TARGET_OPSET: Mapping[str, int] = {"": 17, "ai.onnx.ml": 3}
"""ONNX opsets of the exported graph: supported by every onnxruntime >= 1.14."""
FEATURE_NAMES_KEY = "feature_names"
"""The metadata key holding the JSON list of feature names."""


def export_sklearn(
    model: Any,
    path: Path,
    *,
    feature_names: Sequence[str],
    name: str,
    doc_string: str = "",
    metadata: Mapping[str, str] | None = None,
    input_name: str = INPUT_NAME,
    target_opset: Mapping[str, int] = TARGET_OPSET,
    preprocessing: Preprocessing | None = None,
) -> Path:
    """Convert a fitted scikit-learn classifier (or pipeline) and write it to ``path``.

    The classifier's probabilities come out as a tensor (no ZipMap), the feature names and
    ``metadata`` go into the model's properties, and ``onnx.checker`` checks the graph
    before the file replaces ``path`` atomically. Returns ``path``.

    With ``preprocessing`` (fitted on the raw training table, the model fitted on its
    :meth:`~mlgen_runtime.export.preprocessing.Preprocessing.encode` of it) the graph
    takes one raw input per feature instead of the matrix: strings for string
    categories, floats with NaN for nulls, encoded and imputed inside the graph. A
    preprocessing with nothing to do (:attr:`~.Preprocessing.identity`) keeps the matrix
    input.
    """
    import onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    if isinstance(model, Preprocessed):
        preprocessing, model = model.preprocessing, model.model
    model = float32_thresholds(model)
    register_converters(model)
    classifier = model.steps[-1][1] if hasattr(model, "steps") else model
    graph = convert_sklearn(
        model,
        name=name,
        initial_types=[(input_name, FloatTensorType([None, len(feature_names)]))],
        options={id(classifier): {"zipmap": False}},
        target_opset=dict(target_opset),
    )
    if preprocessing is not None and not preprocessing.identity:
        if list(preprocessing.names) != list(feature_names):
            raise ValueError(
                f"preprocessing features {list(preprocessing.names)} are not {list(feature_names)}"
            )
        graph = preprocessing.prepend_to(graph)
    graph.doc_string = doc_string
    properties = {FEATURE_NAMES_KEY: json.dumps(list(feature_names)), "model_name": name}
    kept = {prop.key: prop.value for prop in graph.metadata_props}
    onnx.helper.set_model_props(graph, {**kept, **properties, **(metadata or {})})
    onnx.checker.check_model(graph)
    path = Path(path)
    with replaced_atomically(path) as partial:
        partial.write_bytes(graph.SerializeToString())
    return path


_CONVERTERS: Mapping[tuple[str, str], tuple[str, str, str]] = {
    ("lightgbm", "LGBMClassifier"): (
        "LightGbmLGBMClassifier",
        "onnxmltools.convert.lightgbm.operator_converters.LightGbm",
        "convert_lightgbm",
    ),
    ("xgboost", "XGBClassifier"): (
        "XGBoostXGBClassifier",
        "onnxmltools.convert.xgboost.operator_converters.XGBoost",
        "convert_xgboost",
    ),
}
"""(top-level module, class) of an estimator skl2onnx does not know -> (skl2onnx alias,
onnxmltools module, converter function)."""


def register_converters(model: Any) -> list[str]:
    """Register onnxmltools' converters for the LightGBM and XGBoost classifiers in ``model``.

    skl2onnx converts scikit-learn's own estimators only; an ``LGBMClassifier`` or
    ``XGBClassifier`` (the model itself or a step of a pipeline) needs its converter
    registered with ``skl2onnx.update_registered_converter`` first, with the options
    (``zipmap``, ``nocl``) :func:`export_sklearn` passes. Nothing is imported for a model
    without them (scikit-learn pipelines never import onnxmltools). Registering again is
    harmless. Returns the skl2onnx aliases registered.

    Raises:
        ModuleNotFoundError: onnxmltools is not installed (a model that needs it).
    """
    import importlib

    steps = [step for _, step in model.steps] if hasattr(model, "steps") else [model]
    registered = []
    for estimator in steps:
        kind = type(estimator)
        found = _CONVERTERS.get((kind.__module__.partition(".")[0], kind.__name__))
        if found is None:
            continue
        alias, module, function = found
        from skl2onnx import update_registered_converter
        from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

        update_registered_converter(
            kind,
            alias,
            calculate_linear_classifier_output_shapes,
            getattr(importlib.import_module(module), function),
            options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
        )
        registered.append(alias)
    return registered


def float32_thresholds(model: Any) -> Any:
    """``model`` with each LightGBM split threshold moved down to the largest float32 at
    or below it, so the float32 ONNX graph decides every float32 input as LightGBM does.

    LightGBM compares inputs with double thresholds, ONNX's tree ensemble with float32
    ones: a threshold rounded *up* to float32 sends inputs equal to the rounded value
    down the other branch (differences of several percent in probability). Rounding
    down instead keeps ``x <= t`` exactly for every float32 ``x``, so predictions on
    float32 features are unchanged. Returns a copy (``model`` itself is not modified)
    when it is, or ends with, an ``LGBMClassifier`` with numeric splits; else ``model``.
    """
    import copy

    steps = model.steps if hasattr(model, "steps") else None
    estimator = steps[-1][1] if steps else model
    kind = type(estimator)
    if (kind.__module__.partition(".")[0], kind.__name__) != ("lightgbm", "LGBMClassifier"):
        return model
    import lightgbm

    lines = estimator.booster_.model_to_string().splitlines()
    for index, line in enumerate(lines):
        if line.startswith("threshold=") and lines[index + 1].startswith("decision_type="):
            kinds = [int(value) for value in lines[index + 1].partition("=")[2].split()]
            values = [float(value) for value in line.partition("=")[2].split()]
            lines[index] = "threshold=" + " ".join(
                repr(value if kind & 1 else _float32_floor(value))  # bit 0: categorical
                for value, kind in zip(values, kinds, strict=True)
            )
    # tree_sizes gives each tree's length in bytes, which the new thresholds change;
    # without it LightGBM reads the trees one after the other.
    text = "\n".join(line for line in lines if not line.startswith("tree_sizes="))
    adjusted = copy.copy(estimator)
    adjusted._Booster = lightgbm.Booster(model_str=text + "\n")
    if not steps:
        return adjusted
    pipeline = copy.copy(model)
    pipeline.steps = [*steps[:-1], (steps[-1][0], adjusted)]
    return pipeline


def _float32_floor(value: float) -> float:
    nearest = np.float32(value)
    if float(nearest) > value:
        nearest = np.nextafter(nearest, np.float32(-np.inf))
    return float(nearest)


def session(path: Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session for ``path``.

    One intra-op thread is the fastest for a small model and leaves the other cores to
    the other server workers.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def check_signature(
    loaded: Any,
    *,
    feature_names: Sequence[str],
    input_name: str = INPUT_NAME,
    output: str = PROBABILITIES_OUTPUT,
) -> tuple[Column, ...] | None:
    """Refuse a session whose inputs, output or recorded feature names differ from the code's.

    A model takes either the one matrix input ``input_name`` (``[n, len(feature_names)]``)
    or, exported with preprocessing, one raw input per feature, named after it, in
    schema order. Returns ``None`` for the first, the preprocessing's columns (which
    inputs are strings) for the second.

    Raises:
        ValueError: naming what differs (and "retrain" when the features do).
    """
    inputs = loaded.get_inputs()
    width = len(feature_names)
    meta = loaded.get_modelmeta().custom_metadata_map
    stored = meta.get(FEATURE_NAMES_KEY)
    if stored is not None and METADATA_KEY in meta and json.loads(stored) != list(feature_names):
        raise ValueError(
            f"model was trained on features {json.loads(stored)}, "
            f"this code expects {list(feature_names)}: retrain"
        )
    columns: tuple[Column, ...] | None = None
    if METADATA_KEY in meta:
        columns = Preprocessing.from_json(meta[METADATA_KEY]).columns
        if [i.name for i in inputs] != list(feature_names):
            found = [i.name for i in inputs]
            raise ValueError(
                f"model inputs must be the features {list(feature_names)}, found {found}"
            )
    elif [i.name for i in inputs] != [input_name] or inputs[0].shape[-1] != width:
        found = [(i.name, i.shape) for i in inputs]
        raise ValueError(f"model input must be {input_name!r} with {width} columns, found {found}")
    outputs = [o.name for o in loaded.get_outputs()]
    if output not in outputs:
        raise ValueError(f"model has no {output!r} output (outputs: {outputs})")
    if stored is not None and json.loads(stored) != list(feature_names):
        raise ValueError(
            f"model was trained on features {json.loads(stored)}, "
            f"this code expects {list(feature_names)}: retrain"
        )
    return columns


def load(
    path: Path,
    *,
    feature_names: Sequence[str],
    threads: int = 1,
    input_name: str = INPUT_NAME,
    output: str = PROBABILITIES_OUTPUT,
    column: int = 1,
) -> Callable[[Any], np.ndarray]:
    """Open an exported model and return its predict function.

    The function maps the model's input to column ``column`` of ``output`` (the
    positive-class probability), shape ``(n,)``, in one session call. The input is a
    float32 matrix ``[n, len(feature_names)]``; for a model exported with preprocessing,
    the raw values: columns by name (a DataFrame, a mapping of sequences; NaN or None for
    nulls), a list of rows as mappings, or the coded matrix (string categories as their
    codes, NaN for nulls: :meth:`~mlgen_runtime.schema.FeatureSchema.to_matrix`).

    Raises:
        ValueError: the file is not a model this code can serve (see
            :func:`check_signature`); ONNX Runtime's own errors pass through for files
            it cannot read.
    """
    loaded = session(path, threads)
    raw = check_signature(loaded, feature_names=feature_names, input_name=input_name, output=output)
    if raw is None:

        def predict(X: Any) -> np.ndarray:
            features = np.ascontiguousarray(X, dtype=np.float32)
            (probabilities,) = loaded.run([output], {input_name: features})
            return np.asarray(probabilities[:, column])

        return predict
    names = [item.name for item in raw]

    def predict_raw(X: Any) -> np.ndarray:
        if isinstance(X, Sequence) and not isinstance(X, np.ndarray):
            X = {name: [row.get(name) for row in X] for name in names}
        (probabilities,) = loaded.run([output], feeds(raw, X))
        return np.asarray(probabilities[:, column])

    return predict_raw
