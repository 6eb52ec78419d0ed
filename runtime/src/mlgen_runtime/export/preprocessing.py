"""Preprocessing that travels with the model: raw feature values in, the model's matrix out.

Training fits a :class:`Preprocessing` on the raw training table (:meth:`Preprocessing.fit`:
the imputation values the schema asks for), encodes the table into the model's
``float32`` matrix with it (:meth:`Preprocessing.encode`) and fits the model on that
matrix; the export puts the same steps in front of the model's ONNX graph
(:meth:`Preprocessing.prepend_to`), so a server feeds raw values and every client is
spared the encoding. Per feature, in schema order:

* a **number** (``number``, ``integer``, ``boolean``, a category with integer levels):
  a ``float`` input ``[n, 1]``; a null is NaN;
* a **string category**: a ``string`` input ``[n, 1]``; its code is the level's index
  in the schema's ``levels``; a null is the empty string (:data:`NULL_STRING`); a value
  outside the levels maps to the ``"other"`` level when the schema says
  ``unknown: other``, and to NaN (a server refuses it before, naming the levels) when it
  says ``reject``;
* a **nullable** feature's nulls are replaced by the value training computed (the
  median or the most frequent value of the training column, or the schema's
  ``fill_value``; for a string category the code of that level).

In the graph a string category is one ``ai.onnx.ml`` ``LabelEncoder`` node (the null
string is one more key, mapped to the imputed code), a nullable number ``IsNaN`` and
``Where``; a ``Concat`` of the columns feeds the model. The encoding in numpy
(:meth:`Preprocessing.encode`) computes the same ``float32`` values, so the in-process
and the exported model predict the same.

A schema whose features are all non-nullable numbers needs none of this
(:attr:`Preprocessing.identity`): its model keeps the one ``features`` matrix input.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

NULL_STRING = ""
"""What a null string category is in the exported graph's string inputs."""
OTHER_LEVEL = "other"
"""The level unknown values map to when the schema says ``unknown: other``."""
METADATA_KEY = "preprocessing"
"""The ONNX metadata key holding :meth:`Preprocessing.to_json`."""
ENCODED_NAME = "mlgen_encoded_features"
"""The graph's internal name of the encoded matrix (the model's own input)."""


@dataclass(frozen=True)
class Column:
    """How one feature's raw values become its column of the model's matrix.

    Attributes:
        name: the feature name (also the graph input's name).
        levels: the vocabulary of a string category (code = index); ``None`` for a number.
        other: the code unknown strings map to; ``None`` (reject): NaN.
        fill: the value nulls are replaced with (a code for a category); ``None`` when
            the feature is not nullable (a null stays NaN).
        impute: how ``fill`` was found (``median``, ``most_frequent``, ``constant``).
    """

    name: str
    levels: tuple[str, ...] | None = None
    other: int | None = None
    fill: float | None = None
    impute: str | None = None

    @property
    def is_string(self) -> bool:
        """Whether the graph input is a string tensor."""
        return self.levels is not None

    def codes(self, values: Any) -> np.ndarray:
        """The column's ``float64`` values (codes for a category), NaN for a null.

        Raises:
            ValueError: a string category's value is not a level and unknown values are
                refused, or a number column holds a value that is not a number.
        """
        if self.levels is None:
            try:
                return _floats(values)
            except (TypeError, ValueError) as error:
                raise ValueError(f"feature {self.name!r}: not a number column ({error})") from None
        array = values if isinstance(values, np.ndarray) else None
        if array is not None and array.dtype.kind in "biuf":  # already coded (NaN: null)
            codes = array.astype(np.float64).reshape(-1)
            valid = np.isnan(codes) | np.isin(codes, np.arange(len(self.levels)))
            if not valid.all():
                value = codes[int(np.flatnonzero(~valid)[0])]
                raise ValueError(
                    f"feature {self.name!r}: code {value:g} is not one of the codes "
                    f"0..{len(self.levels) - 1} of its levels {list(self.levels)}"
                )
            return codes
        index = {level: float(code) for code, level in enumerate(self.levels)}
        raw = _objects(values)
        null = _null_mask(raw) | (raw == NULL_STRING)  # as in the graph: "" is a null
        default = np.nan if self.other is None else float(self.other)
        codes = np.array(
            [
                np.nan if missing else index.get(str(v), default)
                for v, missing in zip(raw, null, strict=True)
            ],
            dtype=np.float64,
        )
        if self.other is None:
            unknown = np.isnan(codes) & ~null
            if unknown.any():
                value = raw[int(np.flatnonzero(unknown)[0])]
                raise ValueError(
                    f"feature {self.name!r}: {value!r} is not one of the levels "
                    f"{list(self.levels)} (add it to levels, or set unknown: other)"
                )
        return codes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (:meth:`from_dict` reads it back)."""
        return {
            "name": self.name,
            "levels": None if self.levels is None else list(self.levels),
            "other": self.other,
            "fill": self.fill,
            "impute": self.impute,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Column:
        """The column :meth:`to_dict` wrote."""
        levels = data.get("levels")
        other, fill = data.get("other"), data.get("fill")
        return cls(
            name=str(data["name"]),
            levels=None if levels is None else tuple(str(level) for level in levels),
            other=None if other is None else int(other),
            fill=None if fill is None else float(fill),
            impute=data.get("impute"),
        )


def _floats(values: Any) -> np.ndarray:
    """A column as ``float64`` with NaN for nulls (None, NaN, pandas' NA)."""
    if hasattr(values, "to_numpy"):  # pandas: nullable dtypes carry pd.NA
        return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    array = np.asarray(values)
    if array.dtype.kind in "biuf":
        return array.astype(np.float64).reshape(-1)
    return np.array([np.nan if _is_null(v) else float(v) for v in array.reshape(-1)])


def _objects(values: Any) -> np.ndarray:
    if hasattr(values, "to_numpy"):
        values = values.to_numpy(dtype=object)
    return np.asarray(values, dtype=object).reshape(-1)


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


def _null_mask(values: np.ndarray) -> np.ndarray:
    return np.fromiter((_is_null(v) for v in values), dtype=bool, count=len(values))


def _feature_levels(feature: Any) -> tuple[Any, ...]:
    return tuple(getattr(feature, "levels", ()) or ())


def is_string_category(feature: Any) -> bool:
    """Whether a schema feature is a category with string levels."""
    levels = _feature_levels(feature)
    return bool(levels) and all(isinstance(level, str) for level in levels)


def _column_values(data: Any, names: Sequence[str], index: int, feature: Any) -> Any:
    if isinstance(data, np.ndarray) and data.ndim == 2:
        if data.shape[1] != len(names):
            raise ValueError(
                f"expected {len(names)} columns ({', '.join(names)}), got {data.shape}"
            )
        return data[:, index]
    column = getattr(feature, "column", None) or feature.name
    for key in dict.fromkeys((feature.name, column)):
        try:
            return data[key]
        except (KeyError, IndexError, TypeError):
            continue
    raise ValueError(f"the data has no column {feature.name!r}")


def _mode(values: np.ndarray) -> float:
    """The most frequent value (the smallest one on ties, as scikit-learn's imputer)."""
    distinct, counts = np.unique(values, return_counts=True)
    return float(distinct[int(np.argmax(counts))])


@dataclass(frozen=True)
class Preprocessing:
    """The steps from raw feature values to the model's matrix (see the module docstring).

    Attributes:
        columns: one per feature, in the matrix's column order.
    """

    columns: tuple[Column, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The feature names, in column order."""
        return tuple(column.name for column in self.columns)

    @property
    def identity(self) -> bool:
        """Whether there is nothing to do: numbers only, none of them imputed."""
        return not any(column.is_string or column.fill is not None for column in self.columns)

    @classmethod
    def fit(cls, features: Iterable[Any], data: Any) -> Preprocessing:
        """The preprocessing of a schema's ``features``, imputation values taken from ``data``.

        Args:
            features: the schema's features (``name``, ``levels``, ``nullable``, ``impute``,
                ``fill_value``, ``unknown``, ``column``; missing attributes mean a
                non-nullable number).
            data: the raw training table: columns by name (a DataFrame or a mapping) or a
                2-D array in schema order.

        Raises:
            ValueError: one line naming the feature: a null in a feature that is not
                nullable, a value outside a category's levels with ``unknown: reject``,
                an all-null column, or an imputation that does not fit the feature.
        """
        features = tuple(features)
        names = [feature.name for feature in features]
        columns = []
        for index, feature in enumerate(features):
            string = is_string_category(feature)
            levels = tuple(str(level) for level in _feature_levels(feature)) if string else None
            other = None
            if string and getattr(feature, "unknown", "reject") == OTHER_LEVEL:
                if OTHER_LEVEL not in levels:  # type: ignore[operator]
                    raise ValueError(
                        f"feature {feature.name!r}: unknown: other needs a level named 'other'"
                    )
                other = levels.index(OTHER_LEVEL)  # type: ignore[union-attr]
            column = Column(feature.name, levels, other)
            values = column.codes(_column_values(data, names, index, feature))
            null = np.isnan(values)
            nullable = bool(getattr(feature, "nullable", False))
            if not nullable:
                if null.any():
                    raise ValueError(
                        f"feature {feature.name!r}: {int(null.sum())} null value(s) but it is "
                        "not nullable (set nullable: true and an impute in features.yaml)"
                    )
                columns.append(column)
                continue
            present = values[~null]
            impute = getattr(feature, "impute", None) or ("most_frequent" if string else "median")
            if impute == "constant":
                fill = _constant(feature, levels)
            elif present.size == 0:
                raise ValueError(f"feature {feature.name!r}: every training value is null")
            elif impute == "median":
                if string:
                    raise ValueError(
                        f"feature {feature.name!r}: impute: median needs a number "
                        "(use most_frequent or constant)"
                    )
                fill = float(np.median(present))
            elif impute == "most_frequent":
                fill = _mode(present)
            else:
                raise ValueError(
                    f"feature {feature.name!r}: impute must be median, most_frequent or "
                    f"constant, got {impute!r}"
                )
            fill = float(np.float32(fill))
            columns.append(Column(feature.name, levels, other, fill, impute))
        return cls(tuple(columns))

    def codes(self, data: Any) -> np.ndarray:
        """The ``float64`` matrix of codes and numbers, NaN for nulls (before imputation:
        what drift compares)."""
        names = list(self.names)
        matrix = np.empty((_length(data, names), len(self.columns)), dtype=np.float64)
        for index, column in enumerate(self.columns):
            matrix[:, index] = column.codes(_column_values(data, names, index, _Named(column.name)))
        return matrix

    def encode(self, data: Any) -> np.ndarray:
        """The model's ``float32`` matrix of the raw ``data``: codes, nulls imputed."""
        matrix = self.codes(data)
        for index, column in enumerate(self.columns):
            if column.fill is not None:
                matrix[np.isnan(matrix[:, index]), index] = column.fill
        return np.ascontiguousarray(matrix, dtype=np.float32)

    def to_json(self) -> str:
        """The steps as JSON (stored in the exported model's metadata)."""
        return json.dumps([column.to_dict() for column in self.columns], separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Preprocessing:
        """The steps :meth:`to_json` wrote."""
        return cls(tuple(Column.from_dict(item) for item in json.loads(text)))

    # ------------------------------------------------------------------ ONNX
    def prepend_to(self, model: Any) -> Any:
        """``model`` (an ONNX ``ModelProto`` whose one input is the encoded matrix) with
        these steps in front: one raw input per feature, named after it.

        Tensor names inside ``model`` that equal a feature name are renamed first, so
        any feature name works. Returns a new ``ModelProto`` (checked by
        ``onnx.checker``).
        """
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        graph = model.graph
        (encoded,) = [
            i.name for i in graph.input if i.name not in {t.name for t in graph.initializer}
        ]
        merged = onnx.ModelProto()
        merged.CopyFrom(model)
        _rename(merged.graph, set(self.names) | {ENCODED_NAME}, {encoded: ENCODED_NAME})
        nodes, inputs, initializers, outputs = [], [], [], []
        for column in self.columns:
            name = column.name
            element = TensorProto.STRING if column.is_string else TensorProto.FLOAT
            inputs.append(helper.make_tensor_value_info(name, element, [None, 1]))
            out = f"mlgen_pre_{name}"
            if column.levels is not None:
                keys = list(column.levels)
                values = [float(code) for code in range(len(keys))]
                if column.fill is not None:
                    keys.append(NULL_STRING)
                    values.append(column.fill)
                default = float("nan") if column.other is None else float(column.other)
                nodes.append(
                    helper.make_node(
                        "LabelEncoder",
                        [name],
                        [out],
                        name=f"mlgen_encode_{name}",
                        domain="ai.onnx.ml",
                        keys_strings=keys,
                        values_floats=values,
                        default_float=default,
                    )
                )
            elif column.fill is not None:
                fill = f"mlgen_fill_{name}"
                initializers.append(
                    numpy_helper.from_array(np.array([column.fill], dtype=np.float32), fill)
                )
                nodes.append(
                    helper.make_node(
                        "IsNaN", [name], [f"mlgen_null_{name}"], name=f"mlgen_isnan_{name}"
                    )
                )
                nodes.append(
                    helper.make_node(
                        "Where",
                        [f"mlgen_null_{name}", fill, name],
                        [out],
                        name=f"mlgen_impute_{name}",
                    )
                )
            else:
                out = name
            outputs.append(out)
        nodes.append(
            helper.make_node("Concat", outputs, [ENCODED_NAME], name="mlgen_concat", axis=1)
        )
        body = merged.graph
        kept = [i for i in body.input if i.name != ENCODED_NAME]
        del body.input[:]
        body.input.extend([*inputs, *kept])
        old_nodes = list(body.node)
        del body.node[:]
        body.node.extend([*nodes, *old_nodes])
        body.initializer.extend(initializers)
        if any(column.is_string for column in self.columns):  # LabelEncoder's default_float
            ml = [opset for opset in merged.opset_import if opset.domain == "ai.onnx.ml"]
            if not ml:
                merged.opset_import.append(helper.make_opsetid("ai.onnx.ml", 2))
            elif ml[0].version < 2:
                ml[0].version = 2
        onnx.helper.set_model_props(
            merged,
            {**{p.key: p.value for p in merged.metadata_props}, METADATA_KEY: self.to_json()},
        )
        onnx.checker.check_model(merged)
        return merged

    def feeds(self, data: Any) -> dict[str, np.ndarray]:
        """The exported graph's inputs for raw ``data`` (columns by name, or rows as
        mappings): ``float32 [n, 1]`` numbers with NaN for nulls, ``object [n, 1]``
        strings with :data:`NULL_STRING` for nulls."""
        if isinstance(data, Sequence) and not isinstance(data, np.ndarray):
            data = {name: [row.get(name) for row in data] for name in self.names}
        return feeds(self.columns, data)


def feeds(columns: Sequence[Column], data: Any) -> dict[str, np.ndarray]:
    """:meth:`Preprocessing.feeds` for ``columns`` (names and which are strings).

    ``data`` may also be the model's coded matrix (codes for string categories, NaN for
    nulls, as :meth:`~mlgen_runtime.schema.FeatureSchema.to_matrix` makes it): each code
    becomes its level again.
    """
    result: dict[str, np.ndarray] = {}
    matrix = data if isinstance(data, np.ndarray) else None
    if matrix is not None and (matrix.ndim != 2 or matrix.shape[1] != len(columns)):
        raise ValueError(f"expected a matrix of {len(columns)} columns, got shape {matrix.shape}")
    for index, column in enumerate(columns):
        values = data[:, index] if matrix is not None else data[column.name]
        if matrix is not None and column.levels is not None:
            codes = column.codes(np.asarray(values, dtype=np.float64))
            levels = np.array([*column.levels, NULL_STRING], dtype=object)
            picked = np.where(np.isnan(codes), len(column.levels), codes).astype(np.intp)
            result[column.name] = levels[picked].reshape(-1, 1)
        elif column.is_string:
            raw = _objects(values)
            result[column.name] = np.array(
                [NULL_STRING if _is_null(v) else _text(v) for v in raw], dtype=object
            ).reshape(-1, 1)
        else:
            result[column.name] = _floats(values).astype(np.float32).reshape(-1, 1)
    return result


def _text(value: Any) -> str:
    """``value`` as text ONNX Runtime can take (UTF-8): a string with lone surrogates (JSON
    may carry them) has them replaced, so it is no level (``other``) rather than an error."""
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


@dataclass(frozen=True)
class Preprocessed:
    """A model fitted on the encoded matrix, with the preprocessing that makes it.

    ``predict_proba`` takes the raw table (or the coded matrix) as
    :meth:`Preprocessing.encode` does; :func:`mlgen_runtime.export.onnx.export_sklearn`
    exports both as one graph.

    Attributes:
        preprocessing: the fitted steps.
        model: the fitted classifier (scikit-learn API).
    """

    preprocessing: Preprocessing
    model: Any

    def predict_proba(self, X: Any) -> Any:
        """The model's class probabilities of the raw ``X``."""
        return self.model.predict_proba(self.preprocessing.encode(X))


def raw_rows(features: Iterable[Any], matrix: Any) -> list[dict[str, Any]]:
    """The raw rows of a coded matrix (what
    :meth:`~mlgen_runtime.schema.FeatureSchema.to_matrix` and a repository's
    ``data.dataset()`` give): a string category's code as its level, NaN as ``None``, a
    boolean as ``True``/``False``, anything else as a ``float``; what a client sends.

    Raises:
        ValueError: a code that is not one of a string category's.
    """
    features = tuple(features)
    values = np.asarray(matrix, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(features):
        raise ValueError(f"expected a matrix of {len(features)} columns, got {values.shape}")
    columns: list[list[Any]] = []
    for index, feature in enumerate(features):
        column = values[:, index]
        if is_string_category(feature):
            levels = tuple(str(level) for level in feature.levels)
            codes = Column(feature.name, levels).codes(column)
            columns.append([None if np.isnan(c) else levels[int(c)] for c in codes])
        elif getattr(feature, "type", None) == "boolean":
            columns.append([None if np.isnan(v) else bool(v) for v in column])
        else:
            columns.append([None if np.isnan(v) else float(v) for v in column])
    names = [feature.name for feature in features]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def needs_preprocessing(features: Iterable[Any]) -> bool:
    """Whether a schema's model takes raw inputs per feature (a string category or a
    nullable feature), rather than one matrix."""
    return any(is_string_category(f) or getattr(f, "nullable", False) for f in features)


@dataclass(frozen=True)
class _Named:
    name: str


def _length(data: Any, names: Sequence[str]) -> int:
    if isinstance(data, np.ndarray):
        return int(data.shape[0])
    lengths = {len(data[name]) for name in names}
    if len(lengths) > 1:
        raise ValueError(f"columns have different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def _constant(feature: Any, levels: tuple[str, ...] | None) -> float:
    value = getattr(feature, "fill_value", None)
    if value is None:
        raise ValueError(f"feature {feature.name!r}: impute: constant needs a fill_value")
    if levels is None:
        return float(value)
    if str(value) not in levels:
        raise ValueError(
            f"feature {feature.name!r}: fill_value {value!r} is not one of the levels "
            f"{list(levels)}"
        )
    return float(levels.index(str(value)))


def _rename(graph: Any, taken: set[str], renames: dict[str, str]) -> None:
    """Rename tensors of ``graph``: ``renames``, and any other tensor whose name is in
    ``taken`` (a feature name) gets a free one, in every node, input, output and
    initializer."""
    names = {i.name for i in graph.input} | {o.name for o in graph.output}
    names |= {t.name for t in graph.initializer} | {v.name for v in graph.value_info}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
    outputs = {o.name for o in graph.output}
    clash = sorted(outputs & taken)
    if clash:
        raise ValueError(f"feature {clash[0]!r} has the name of a model output: rename the feature")
    mapping = dict(renames)
    for name in sorted(names & taken):
        if name in mapping:
            continue
        suffix = 0
        while f"{name}_{suffix}" in names or f"{name}_{suffix}" in taken:
            suffix += 1
        mapping[name] = f"{name}_{suffix}"
    if not mapping:
        return
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
    for items in (graph.input, graph.output, graph.value_info, graph.initializer):
        for item in items:
            item.name = mapping.get(item.name, item.name)
