"""TensorFlow SavedModels as TF Serving loads them: version folders and one signature.

TF Serving serves ``<base>/<model name>/<version>/saved_model.pb`` and answers requests
that name no signature with ``serving_default``. This module writes that layout
atomically (:func:`save`), resolves a path the way TF Serving picks a version
(:func:`saved_model_dir`), checks a loaded signature against the feature schema
(:func:`serving_signature`) and decodes REST ``instances`` into the signature's tensors
(:func:`signature_inputs`).

Raw rows: for a schema with string categories or nullable features the signature takes
one input per feature, ``tf.string`` for a string category (``""`` is a null) and
``float32`` for a number (NaN is a null; TF Serving's REST API accepts the ``NaN``
literal), and encodes them in the graph as training did
(:class:`~mlgen_runtime.export.preprocessing.Preprocessing`): a ``tf.lookup`` table over
the stored levels (an unknown value maps to the ``other`` level under ``unknown: other``,
else NaN), nulls replaced by the values training computed (:func:`encoding_tables`,
:func:`encode`). The steps are also stored beside the graph, in the version's
``assets.extra`` folder, which TF Serving ignores (:func:`read_preprocessing`). A schema
of non-nullable numbers gets the same float32 inputs as before and no table.

TensorFlow is not an extra of the runtime: it comes from the repository's own
dependencies and is imported (quietly) inside the functions that need it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlgen_runtime.export import replaced_atomically
from mlgen_runtime.export.preprocessing import NULL_STRING, Column, Preprocessing

SIGNATURE_NAME = "serving_default"
SERVING_TAG = "serve"
SAVED_MODEL_FILE = "saved_model.pb"
PREPROCESSING_FILE = Path("assets.extra") / "mlgen-preprocessing.json"
"""Where :func:`save` stores the preprocessing, inside a version folder."""


def tensorflow() -> Any:
    """Import TensorFlow without the INFO and WARNING logs of its C++ runtime."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def save(
    module: Any,
    base: Path,
    model_name: str,
    version: int,
    signature: Any,
    preprocessing: Preprocessing | None = None,
) -> Path:
    """Write ``module`` as ``base/<model_name>/<version>/`` with ``signature`` as default.

    The whole ``base`` folder is written beside the old one and swapped in, so a reader
    never sees half a model (earlier versions in ``base`` are replaced). ``preprocessing``
    (the steps ``signature`` applies) is stored in :data:`PREPROCESSING_FILE`. Returns
    ``base``.
    """
    tf = tensorflow()
    base = Path(base)
    with replaced_atomically(base) as partial:
        folder = partial / model_name / str(int(version))
        tf.saved_model.save(module, str(folder), signatures={SIGNATURE_NAME: signature})
        if preprocessing is not None:
            (folder / PREPROCESSING_FILE).parent.mkdir(parents=True, exist_ok=True)
            (folder / PREPROCESSING_FILE).write_text(preprocessing.to_json(), encoding="utf-8")
    return base


def read_preprocessing(directory: Path) -> Preprocessing | None:
    """The preprocessing :func:`save` stored in a SavedModel folder (``None``: none)."""
    path = Path(directory) / PREPROCESSING_FILE
    if not path.is_file():
        return None
    return Preprocessing.from_json(path.read_text(encoding="utf-8"))


def input_specs(columns: Sequence[Column]) -> list[Any]:
    """The signature's inputs: one ``[None]`` tensor per column, named after it,
    ``tf.string`` for a string category and ``float32`` otherwise."""
    tf = tensorflow()
    return [
        tf.TensorSpec([None], tf.string if column.is_string else tf.float32, name=column.name)
        for column in columns
    ]


def encoding_tables(columns: Sequence[Column]) -> dict[str, Any]:
    """A ``tf.lookup.StaticHashTable`` per string category: level -> code, the null
    string -> the imputed code (when nullable), anything else -> the ``other`` code (or
    NaN). Keep them on the exported ``tf.Module`` so they are saved with it."""
    tf = tensorflow()
    tables = {}
    for column in columns:
        if column.levels is None:
            continue
        keys = list(column.levels)
        values = [float(code) for code in range(len(keys))]
        if column.fill is not None:
            keys.append(NULL_STRING)
            values.append(column.fill)
        initializer = tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys, tf.string), tf.constant(values, tf.float32)
        )
        default = math.nan if column.other is None else float(column.other)
        tables[column.name] = tf.lookup.StaticHashTable(initializer, default_value=default)
    return tables


def encode(columns: Sequence[Column], tables: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    """The model's ``float32 [batch, len(columns)]`` matrix of the raw ``inputs`` (name ->
    ``[batch]`` tensor), in the graph: what :meth:`Preprocessing.encode` computes."""
    tf = tensorflow()
    encoded = []
    for column in columns:
        value = inputs[column.name]
        if column.levels is not None:
            value = tables[column.name].lookup(value)
        elif column.fill is not None:
            value = tf.where(tf.math.is_nan(value), tf.constant(column.fill, tf.float32), value)
        encoded.append(value)
    return tf.stack(encoded, axis=1)


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


def serving_signature(
    loaded: Any, feature_names: Sequence[str], output: str, strings: Collection[str] = ()
) -> Any:
    """The ``serving_default`` function of a loaded SavedModel, checked against the schema.

    The inputs must be exactly ``feature_names``, each of shape ``[batch]``, ``tf.string``
    for the names in ``strings`` (string categories) and float32 for the others, and
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
        dtype = tf.string if name in strings else tf.float32
        if spec.dtype != dtype or spec.shape.as_list() != [None]:
            raise ValueError(f"input {name!r} is {spec}, expected {dtype.name} of shape [None]")
    outputs = function.structured_outputs
    if output not in outputs or outputs[output].dtype != tf.float32:
        raise ValueError(f"no float32 {output!r} output (outputs: {sorted(outputs)})")
    return function


def check_instances(
    instances: Any,
    feature_names: Sequence[str],
    strings: Collection[str] = (),
    nullable: Collection[str] = (),
) -> None:
    """Check REST ``instances`` (row format) as TF Serving decodes them for the signature.

    Every instance must hold exactly the feature names: a string for the names in
    ``strings``, else a finite number (NaN, a null, too for the names in ``nullable``).

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
            if name in strings:
                if not isinstance(value, str):
                    raise ValueError(
                        f"instance {index}: {name} must be a string ({NULL_STRING!r} for a "
                        f"null), got {value!r}"
                    )
                continue
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(f"instance {index}: {name} must be a number, got {value!r}")
            if not math.isfinite(value) and not (name in nullable and math.isnan(value)):
                raise ValueError(f"instance {index}: {name} must be finite, got {value}")


def signature_inputs(
    instances: Any,
    feature_names: Sequence[str],
    strings: Collection[str] = (),
    nullable: Collection[str] = (),
) -> dict[str, Any]:
    """The signature's input tensors (``[batch]`` each: ``tf.string`` for ``strings``,
    float32 for the others) for REST ``instances``, as TF Serving decodes them.

    Raises:
        ValueError: the instances do not fit (see :func:`check_instances`).
    """
    check_instances(instances, feature_names, strings, nullable)
    tf = tensorflow()
    return {
        name: (
            tf.constant([str(instance[name]) for instance in instances], tf.string)
            if name in strings
            else tf.constant([float(instance[name]) for instance in instances], tf.float32)
        )
        for name in feature_names
    }


def feeds(preprocessing: Preprocessing, data: Any) -> dict[str, Any]:
    """The signature's input tensors for ``data`` (the coded matrix, columns by name or
    rows as mappings), as :meth:`Preprocessing.feeds` makes them, ``[batch]`` each."""
    tf = tensorflow()
    return {
        name: tf.constant(
            values.reshape(-1).tolist() if values.dtype == object else values.reshape(-1),
            tf.string if values.dtype == object else tf.float32,
        )
        for name, values in preprocessing.feeds(data).items()
    }
