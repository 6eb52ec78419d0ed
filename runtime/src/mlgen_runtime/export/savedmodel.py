"""TensorFlow SavedModels as TF Serving loads them: version folders and one signature.

TF Serving serves ``<base>/<model name>/<version>/saved_model.pb`` and answers requests
that name no signature with ``serving_default``. This module writes that layout
atomically (:func:`save`), resolves a path the way TF Serving picks a version
(:func:`saved_model_dir`), checks a loaded signature against the feature schema
(:func:`serving_signature`) and decodes REST ``instances`` into the signature's tensors
(:func:`signature_inputs`).

TensorFlow is not an extra of the runtime: it comes from the repository's own
dependencies and is imported (quietly) inside the functions that need it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlgen_runtime.export import replaced_atomically

SIGNATURE_NAME = "serving_default"
SERVING_TAG = "serve"
SAVED_MODEL_FILE = "saved_model.pb"


def tensorflow() -> Any:
    """Import TensorFlow without the INFO and WARNING logs of its C++ runtime."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def save(module: Any, base: Path, model_name: str, version: int, signature: Any) -> Path:
    """Write ``module`` as ``base/<model_name>/<version>/`` with ``signature`` as default.

    The whole ``base`` folder is written beside the old one and swapped in, so a reader
    never sees half a model (earlier versions in ``base`` are replaced). Returns ``base``.
    """
    tf = tensorflow()
    base = Path(base)
    with replaced_atomically(base) as partial:
        tf.saved_model.save(
            module,
            str(partial / model_name / str(int(version))),
            signatures={SIGNATURE_NAME: signature},
        )
    return base


def saved_model_dir(path: Path, model_name: str) -> Path:
    """The SavedModel ``path`` designates, resolved as TF Serving resolves versions.

    ``path`` is a SavedModel folder, a model's base path (``models/<model_name>``: its
    highest numeric version) or the models folder (``models``: the model's highest).

    Raises:
        FileNotFoundError: there is no SavedModel there.
    """
    path = Path(path)
    if (path / SAVED_MODEL_FILE).is_file():
        return path
    if (path / model_name).is_dir():
        path = path / model_name
    versions = sorted(
        (int(child.name), child)
        for child in (path.iterdir() if path.is_dir() else ())
        if child.is_dir() and child.name.isdigit() and (child / SAVED_MODEL_FILE).is_file()
    )
    if not versions:
        raise FileNotFoundError(
            f"no SavedModel in {path}: expected {model_name}/<version>/{SAVED_MODEL_FILE}"
        )
    return versions[-1][1]


def serving_signature(loaded: Any, feature_names: Sequence[str], output: str) -> Any:
    """The ``serving_default`` function of a loaded SavedModel, checked against the schema.

    The inputs must be exactly ``feature_names``, each float32 of shape ``[batch]``, and
    ``output`` a float32 output.

    Raises:
        ValueError: naming what differs.
    """
    tf = tensorflow()
    signatures = loaded.signatures
    if SIGNATURE_NAME not in signatures:
        raise ValueError(
            f"the SavedModel has no {SIGNATURE_NAME!r} signature (it has {sorted(signatures)}):"
            " TF Serving uses it for requests that name no signature"
        )
    function = signatures[SIGNATURE_NAME]
    _, inputs = function.structured_input_signature
    if sorted(inputs) != sorted(feature_names):
        raise ValueError(
            f"the model's inputs are {sorted(inputs)}, this code's features are "
            f"{sorted(feature_names)}: retrain"
        )
    for name, spec in inputs.items():
        if spec.dtype != tf.float32 or spec.shape.as_list() != [None]:
            raise ValueError(f"input {name!r} is {spec}, expected float32 of shape [None]")
    outputs = function.structured_outputs
    if output not in outputs or outputs[output].dtype != tf.float32:
        raise ValueError(f"no float32 {output!r} output (outputs: {sorted(outputs)})")
    return function


def check_instances(instances: Any, feature_names: Sequence[str]) -> None:
    """Check REST ``instances`` (row format) as TF Serving decodes them for the signature.

    Every instance must hold exactly the feature names, each a finite number.

    Raises:
        ValueError: naming the first instance and feature that do not fit.
    """
    if not isinstance(instances, list) or not instances:
        raise ValueError("instances must be a non-empty list")
    expected = sorted(feature_names)
    for index, instance in enumerate(instances):
        if not isinstance(instance, Mapping) or sorted(instance) != expected:
            found = sorted(instance) if isinstance(instance, Mapping) else instance
            raise ValueError(f"instance {index} has {found}, the inputs are {expected}")
        for name, value in instance.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(f"instance {index}: {name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"instance {index}: {name} must be finite, got {value}")


def signature_inputs(instances: Any, feature_names: Sequence[str]) -> dict[str, Any]:
    """The signature's input tensors (float32 ``[batch]`` each) for REST ``instances``.

    Raises:
        ValueError: the instances do not fit (see :func:`check_instances`).
    """
    check_instances(instances, feature_names)
    tf = tensorflow()
    return {
        name: tf.constant([float(instance[name]) for instance in instances], tf.float32)
        for name in feature_names
    }
