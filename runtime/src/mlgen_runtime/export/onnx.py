"""scikit-learn models as ONNX graphs: export with skl2onnx, load with ONNX Runtime.

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
:func:`export_sklearn`, so a server that only loads models never imports it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlgen_runtime.export import replaced_atomically

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
) -> Path:
    """Convert a fitted scikit-learn classifier (or pipeline) and write it to ``path``.

    The classifier's probabilities come out as a tensor (no ZipMap), the feature names and
    ``metadata`` go into the model's properties, and ``onnx.checker`` checks the graph
    before the file replaces ``path`` atomically. Returns ``path``.
    """
    import onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    classifier = model.steps[-1][1] if hasattr(model, "steps") else model
    graph = convert_sklearn(
        model,
        name=name,
        initial_types=[(input_name, FloatTensorType([None, len(feature_names)]))],
        options={id(classifier): {"zipmap": False}},
        target_opset=dict(target_opset),
    )
    graph.doc_string = doc_string
    properties = {FEATURE_NAMES_KEY: json.dumps(list(feature_names)), "model_name": name}
    onnx.helper.set_model_props(graph, {**properties, **(metadata or {})})
    onnx.checker.check_model(graph)
    path = Path(path)
    with replaced_atomically(path) as partial:
        partial.write_bytes(graph.SerializeToString())
    return path


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
) -> None:
    """Refuse a session whose input, output or recorded feature names differ from the code's.

    Raises:
        ValueError: naming what differs (and "retrain" when the features do).
    """
    inputs = loaded.get_inputs()
    width = len(feature_names)
    if [i.name for i in inputs] != [input_name] or inputs[0].shape[-1] != width:
        found = [(i.name, i.shape) for i in inputs]
        raise ValueError(f"model input must be {input_name!r} with {width} columns, found {found}")
    outputs = [o.name for o in loaded.get_outputs()]
    if output not in outputs:
        raise ValueError(f"model has no {output!r} output (outputs: {outputs})")
    stored = loaded.get_modelmeta().custom_metadata_map.get(FEATURE_NAMES_KEY)
    if stored is not None and json.loads(stored) != list(feature_names):
        raise ValueError(
            f"model was trained on features {json.loads(stored)}, "
            f"this code expects {list(feature_names)}: retrain"
        )


def load(
    path: Path,
    *,
    feature_names: Sequence[str],
    threads: int = 1,
    input_name: str = INPUT_NAME,
    output: str = PROBABILITIES_OUTPUT,
    column: int = 1,
) -> Callable[[np.ndarray], np.ndarray]:
    """Open an exported model and return its predict function.

    The function maps a float32 matrix ``[n, len(feature_names)]`` to column ``column``
    of ``output`` (the positive-class probability), shape ``(n,)``, in one session call.

    Raises:
        ValueError: the file is not a model this code can serve (see
            :func:`check_signature`); ONNX Runtime's own errors pass through for files
            it cannot read.
    """
    loaded = session(path, threads)
    check_signature(loaded, feature_names=feature_names, input_name=input_name, output=output)

    def predict(X: np.ndarray) -> np.ndarray:
        features = np.ascontiguousarray(X, dtype=np.float32)
        (probabilities,) = loaded.run([output], {input_name: features})
        return np.asarray(probabilities[:, column])

    return predict
