"""Feature schema objects: what a model's inputs are, and how rows become its matrix.

A generated repository declares its features once, as data: ``<package>/features.yaml``
(loaded by :func:`load_schema`) describes the dataset (where the table is, its label,
entity key and event timestamp) and every model input (type, range or levels,
nullability and imputation, description). Training, the exported artifact's input, the
serving API's request model, the Feast definitions and the drift profile all derive from
the resulting :class:`FeatureSchema`.

Feature types:

* ``number``: any finite real value in ``[minimum, maximum]``;
* ``integer``: a whole number in ``[minimum, maximum]``;
* ``category``: one of ``levels`` (all strings or all integers); with ``unknown: other``
  a value outside the levels counts as the level named ``"other"``, with
  ``unknown: reject`` it is refused;
* ``boolean``: ``true``/``false`` (or ``1``/``0``).

Numbers and integers are ``kind == "numeric"``; categories and booleans are
``kind == "categorical"``, coded in the input matrix by their integer level (integer
levels) or their position in ``levels`` (string levels; booleans are 0 and 1).

A file that does not validate raises :class:`SchemaError` with one line naming the file,
the line, the key and the fix::

    features.yaml:14: features[3].type: must be one of number, integer, category, boolean
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

FeatureKind = Literal["numeric", "categorical"]
FeatureType = Literal["number", "integer", "category", "boolean"]
Impute = Literal["median", "most_frequent", "constant"]
Unknown = Literal["other", "reject"]
DataFormat = Literal["parquet", "csv"]
Level = str | int

FEATURE_TYPES: tuple[str, ...] = get_args(FeatureType)
IMPUTE_STRATEGIES: tuple[str, ...] = get_args(Impute)
OTHER = "other"
"""The level an unknown category maps to under ``unknown: other``."""
_LEGACY_KINDS = {"numeric": "number", "categorical": "category"}
_KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class FeatureProblem(ValueError):
    """A feature definition that is not valid; ``key`` names the offending attribute."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class SchemaError(ValueError):
    """A schema file that does not validate, as one line: ``FILE:LINE: KEY: problem``.

    Attributes:
        source: the file (or answer) the schema came from.
        line: the 1-based line of the offending key (``None`` when unknown).
        key: the key path, e.g. ``features[3].type``.
        problem: what is wrong and how to fix it.
    """

    def __init__(self, source: str, line: int | None, key: str, problem: str) -> None:
        self.source, self.line, self.key, self.problem = source, line, key, problem
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def _fmt(value: Any) -> str:
    return f"{value:g}" if _is_number(value) else repr(value)


@dataclass(frozen=True)
class Feature:
    """One model input.

    ``Feature("age", "number", 0, 120, "Age in years.")`` (the legacy kinds ``"numeric"``
    and ``"categorical"`` are accepted: ``Feature("plan", "categorical", 0, 2, "")`` is a
    category with the integer levels 0, 1 and 2).

    Attributes:
        name: a Python identifier; the request field, the Feast field, the matrix column's
            name.
        type: ``number``, ``integer``, ``category`` or ``boolean``.
        minimum: the smallest value accepted (numbers and integers; for categories the
            smallest code).
        maximum: the largest value accepted (numbers and integers; the largest code).
        description: what the value means, with its unit or levels.
        levels: a category's vocabulary (strings or integers); ``(0, 1)`` for a boolean.
        unknown: ``"other"`` (an unknown category counts as the level ``"other"``) or
            ``"reject"``.
        nullable: whether a value may be missing (``None``; ``NaN`` in the matrix).
        impute: how training fills a missing value: ``median``, ``most_frequent`` or
            ``constant`` (with ``fill_value``); ``None`` when not nullable.
        fill_value: the constant of ``impute: constant``.
        column: the source table's column, when it differs from ``name``.
    """

    name: str
    type: str
    minimum: float = math.nan
    maximum: float = math.nan
    description: str = ""
    _: KW_ONLY
    levels: tuple[Any, ...] = ()  # str or int (Level); Any keeps callers that read codes simple
    unknown: Unknown = "reject"
    nullable: bool = False
    impute: Impute | None = None
    fill_value: float | str | None = None
    column: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise FeatureProblem(
                f"feature name {self.name!r} must be a Python identifier "
                "(letters, digits, underscores; put the table's name in `column`)",
                "name",
            )
        set_ = object.__setattr__
        type_ = _LEGACY_KINDS.get(self.type, self.type)
        if type_ not in FEATURE_TYPES:
            raise FeatureProblem(
                f"feature {self.name!r}: unknown type {self.type!r} "
                f"(one of {', '.join(FEATURE_TYPES)})",
                "type",
            )
        if self.type == "categorical" and not self.levels:
            self._legacy_codes()
        set_(self, "type", type_)
        set_(self, "levels", tuple(self.levels))
        if type_ in ("number", "integer"):
            self._check_range()
            if self.levels:
                raise FeatureProblem(f"feature {self.name!r}: only a category has levels", "levels")
        elif type_ == "boolean":
            set_(self, "levels", (0, 1))
            set_(self, "minimum", 0.0)
            set_(self, "maximum", 1.0)
        else:
            self._check_levels()
        if self.unknown not in ("other", "reject"):
            raise FeatureProblem(
                f"feature {self.name!r}: unknown must be 'other' or 'reject'", "unknown"
            )
        if self.unknown == "other" and type_ != "category":
            set_(self, "unknown", "reject")
        self._check_nulls()
        if self.column is not None and (not isinstance(self.column, str) or not self.column):
            raise FeatureProblem(
                f"feature {self.name!r}: column must be a non-empty string", "column"
            )

    def _legacy_codes(self) -> None:
        low, high = self.minimum, self.maximum
        if not (_is_number(low) and _is_number(high)) or not low < high:
            raise FeatureProblem(f"feature {self.name!r}: minimum must be below maximum", "maximum")
        if not (float(low).is_integer() and float(high).is_integer()):
            raise FeatureProblem(
                f"feature {self.name!r}: categorical bounds must be integers", "minimum"
            )
        object.__setattr__(self, "levels", tuple(range(int(low), int(high) + 1)))

    def _check_range(self) -> None:
        low, high = self.minimum, self.maximum
        for key, value in (("minimum", low), ("maximum", high)):
            if not _is_number(value) or not math.isfinite(value):
                raise FeatureProblem(
                    f"feature {self.name!r}: {key} must be a finite number (the valid range)", key
                )
        if not low < high:
            raise FeatureProblem(f"feature {self.name!r}: minimum must be below maximum", "maximum")
        object.__setattr__(self, "minimum", float(low))
        object.__setattr__(self, "maximum", float(high))

    def _check_levels(self) -> None:
        levels = self.levels
        strings = all(isinstance(level, str) for level in levels)
        if not (strings or all(_is_int(level) for level in levels)):
            raise FeatureProblem(
                f"feature {self.name!r}: levels must be all strings or all integers", "levels"
            )
        if len(levels) < 2:
            raise FeatureProblem(
                f"feature {self.name!r}: a category needs at least 2 levels", "levels"
            )
        duplicates = sorted({str(level) for level in levels if levels.count(level) > 1})
        if duplicates:
            raise FeatureProblem(
                f"feature {self.name!r}: duplicate level(s) {', '.join(duplicates)}", "levels"
            )
        if strings and any(not level for level in levels):
            raise FeatureProblem(f"feature {self.name!r}: a level cannot be empty", "levels")
        if self.unknown == "other" and OTHER not in levels:
            raise FeatureProblem(
                f"feature {self.name!r}: unknown: other needs a level named {OTHER!r} "
                "(add it to levels, or use unknown: reject)",
                "unknown",
            )
        if not strings:
            object.__setattr__(self, "levels", tuple(int(level) for level in levels))
        codes = self.codes
        object.__setattr__(self, "minimum", float(min(codes)))
        object.__setattr__(self, "maximum", float(max(codes)))

    def _check_nulls(self) -> None:
        if self.impute is not None and self.impute not in IMPUTE_STRATEGIES:
            raise FeatureProblem(
                f"feature {self.name!r}: impute must be one of {', '.join(IMPUTE_STRATEGIES)}",
                "impute",
            )
        if not self.nullable:
            if self.impute is not None:
                raise FeatureProblem(
                    f"feature {self.name!r}: impute needs nullable: true", "impute"
                )
        elif self.impute is None:
            default = "median" if self.kind == "numeric" else "most_frequent"
            object.__setattr__(self, "impute", default)
        if self.impute == "constant":
            if self.fill_value is None:
                raise FeatureProblem(
                    f"feature {self.name!r}: impute: constant needs a fill_value", "fill_value"
                )
            problem = self.problem(self.fill_value)
            if problem is not None:
                raise FeatureProblem(f"fill_value: {problem}", "fill_value")
        elif self.fill_value is not None:
            raise FeatureProblem(
                f"feature {self.name!r}: fill_value is only used with impute: constant",
                "fill_value",
            )

    @property
    def kind(self) -> FeatureKind:
        """``"numeric"`` (number, integer) or ``"categorical"`` (category, boolean)."""
        return "numeric" if self.type in ("number", "integer") else "categorical"

    @property
    def source_column(self) -> str:
        """The source table's column of this feature (``column``, else ``name``)."""
        return self.column or self.name

    @property
    def string_levels(self) -> bool:
        """Whether this is a category with string levels (coded by position)."""
        return self.type == "category" and isinstance(self.levels[0], str)

    @property
    def codes(self) -> tuple[int, ...]:
        """The matrix codes of a categorical feature's levels (empty for a numeric one)."""
        if self.kind != "categorical":
            return ()
        if self.string_levels:
            return tuple(range(len(self.levels)))
        return tuple(int(level) for level in self.levels)

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable for this feature, or ``None`` when it is."""
        if _is_null(value):
            if self.nullable:
                return None
            return (
                f"{self.name} must be a finite number, got {value}"
                if value is not None
                else (f"{self.name} must not be null")
            )
        if self.string_levels:
            if isinstance(value, str) and (value in self.levels or self.unknown == "other"):
                return None
            return f"{self.name} must be one of {list(self.levels)}, got {value!r}"
        if isinstance(value, bool | np.bool_):
            if self.type == "boolean":
                return None
            value = int(value)
        if not _is_number(value):
            return f"{self.name} must be a number, got {value!r}"
        if not math.isfinite(value):
            return f"{self.name} must be a finite number, got {value}"
        if not self.minimum <= value <= self.maximum:
            return (
                f"{self.name} must be between {self.minimum:g} and {self.maximum:g}, got {value:g}"
            )
        if self.kind == "categorical" and value not in self.levels:
            if self.type == "boolean":
                return f"{self.name} must be true or false (1 or 0), got {value:g}"
            return (
                f"{self.name} must be one of the integer codes {list(self.levels)}, got {value:g}"
            )
        if self.type == "integer" and not float(value).is_integer():
            return f"{self.name} must be a whole number, got {value:g}"
        return None

    def encode(self, value: Any) -> float:
        """The matrix value of an acceptable ``value`` (``NaN`` for a missing one)."""
        if _is_null(value):
            return math.nan
        if self.string_levels:
            if value not in self.levels:
                value = OTHER
            return float(self.levels.index(value))
        return float(value)


@dataclass(frozen=True)
class Dataset:
    """Where a model's training table is, and which of its columns play which role.

    Attributes:
        source: Parquet or CSV file; a local path (relative = the repository root) or a
            URL Feast's FileSource accepts (``s3://``, ``gs://``...). ``""`` = the demo
            generator.
        format: ``parquet`` or ``csv``.
        label: the label column (binary classification).
        positive_class: the label value that is class 1, as a string.
        entity: the entity key column (``None``: the row number is the key).
        timestamp: the event timestamp column (``None``: one fixed timestamp).
        entity_name: the Feast entity's name.
        feature_view: the Feast feature view's name.
    """

    source: str = ""
    format: DataFormat = "parquet"
    label: str = "label"
    positive_class: str = "1"
    entity: str | None = None
    timestamp: str | None = None
    entity_name: str = "row"
    feature_view: str = "features"

    @property
    def is_demo(self) -> bool:
        """Whether the table is the synthetic demo (no ``source``)."""
        return not self.source


@dataclass(frozen=True)
class FeatureSchema:
    """A model's features, in the column order of its input matrix.

    Attributes:
        features: the features, in column order.
        example: one valid raw row (for smoke tests, documentation and API examples).
        dataset: where the training table is (``None`` for a schema built in code).
    """

    features: tuple[Feature, ...]
    example: Mapping[str, Any] = field(default_factory=dict)
    dataset: Dataset | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        names = [feature.name for feature in self.features]
        if not names:
            raise ValueError("a feature schema needs at least one feature")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate feature name(s): {', '.join(duplicates)}")
        columns = [feature.source_column for feature in self.features]
        duplicates = sorted({column for column in columns if columns.count(column) > 1})
        if duplicates:
            raise ValueError(f"duplicate feature column(s): {', '.join(duplicates)}")
        if self.example:
            self.to_matrix([self.example])  # an invalid example fails at import, not later

    @property
    def names(self) -> tuple[str, ...]:
        """The feature names, in column order."""
        return tuple(feature.name for feature in self.features)

    @property
    def columns(self) -> dict[str, str]:
        """Each feature's source table column, by feature name."""
        return {feature.name: feature.source_column for feature in self.features}

    @property
    def width(self) -> int:
        """The number of columns of the input matrix."""
        return len(self.features)

    def feature(self, name: str) -> Feature:
        """The feature called ``name`` (``KeyError`` if there is none)."""
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    def example_row(self) -> dict[str, Any]:
        """A copy of the example row (a typical value of every feature when none is
        given: the midpoint of a range, the middle code, the first string level).

        Numbers and codes are ``float``; string levels stay strings, nulls ``None``.
        """
        if self.example:
            return {name: _raw(self.feature(name), self.example[name]) for name in self.names}
        row: dict[str, Any] = {}
        for feature in self.features:
            if feature.string_levels:
                row[feature.name] = next(level for level in feature.levels if level != OTHER)
            elif feature.kind == "categorical":
                middle = round((feature.minimum + feature.maximum) / 2)
                row[feature.name] = float(middle if middle in feature.codes else feature.codes[0])
            elif feature.type == "integer":
                row[feature.name] = float(round((feature.minimum + feature.maximum) / 2))
            else:
                row[feature.name] = (feature.minimum + feature.maximum) / 2
        return row

    def to_matrix(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Turn rows of named raw feature values into the model's input matrix.

        Args:
            rows: one mapping per example, with exactly the keys of :attr:`names`.

        Returns:
            A C-contiguous ``float32`` array of shape ``(len(rows), width)``, columns in
            schema order; categories as their codes, missing values as ``NaN``.

        Raises:
            ValueError: a row lacks a feature, has an unknown key, or has a value that is
                not acceptable (the message names the row and the feature).
        """
        matrix = np.empty((len(rows), self.width), dtype=np.float32)
        names = self.names
        known = set(names)
        for index, row in enumerate(rows):
            missing = [name for name in names if name not in row]
            if missing:
                raise ValueError(f"row {index}: missing feature(s) {', '.join(missing)}")
            unknown = sorted(set(row) - known)
            if unknown:
                raise ValueError(f"row {index}: unknown feature(s) {', '.join(unknown)}")
            for column, feature in enumerate(self.features):
                value = row[feature.name]
                problem = feature.problem(value)
                if problem is not None:
                    raise ValueError(f"row {index}: {problem}")
                matrix[index, column] = feature.encode(value)
        return matrix

    def columns_to_matrix(self, columns: Mapping[str, Any]) -> np.ndarray:
        """Turn a table's columns (a mapping, e.g. a ``pandas.DataFrame``, from feature
        name to a column of raw values) into the model's input matrix, column-wise.

        Returns:
            A C-contiguous ``float32`` array ``(rows, width)`` in schema order: numbers,
            category codes (string levels by position, unknown ones as ``"other"``) and
            ``NaN`` for missing values of nullable features.

        Raises:
            ValueError: one line naming the feature and what is wrong with its column (a
                missing column, nulls in a non-nullable feature, values out of range, not
                whole numbers or not among the levels), with an example value.
        """
        encoded = [_encode_column(feature, columns) for feature in self.features]
        lengths = {len(column) for column in encoded}
        if len(lengths) > 1:
            raise ValueError(f"the feature columns differ in length: {sorted(lengths)}")
        if not encoded or not len(encoded[0]):
            return np.empty((0, self.width), dtype=np.float32)
        return np.ascontiguousarray(np.column_stack(encoded), dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        """The schema as the data of a ``features.yaml`` file (:func:`dump_schema`)."""
        out: dict[str, Any] = {}
        if self.dataset is not None:
            out["dataset"] = {key: getattr(self.dataset, key) for key in DatasetSpec.model_fields}
        out["features"] = [_feature_dict(feature) for feature in self.features]
        if self.example:
            out["example"] = {name: self.example[name] for name in self.names}
        return out


def _column_values(feature: Feature, columns: Mapping[str, Any]) -> list[Any]:
    if feature.name not in columns:
        raise ValueError(f"feature {feature.name!r} is missing from the data")
    column = columns[feature.name]
    values = column.tolist() if hasattr(column, "tolist") else list(column)
    return [None if _is_null(value) else value for value in values]


def _encode_column(feature: Feature, columns: Mapping[str, Any]) -> np.ndarray:
    """One feature's column as float64 matrix values; ``ValueError`` naming the feature."""
    values = _column_values(feature, columns)
    nulls = [value is None for value in values]
    where = f"feature {feature.name!r}"
    if any(nulls) and not feature.nullable:
        raise ValueError(
            f"{where} has {sum(nulls)} null values; set nullable: true (and an impute) "
            "in features.yaml, or fill them in the data"
        )
    present = [value for value in values if value is not None]
    if feature.string_levels:
        strange = [value for value in present if not isinstance(value, str)]
        if strange:
            raise ValueError(
                f"{where} has non-text values for its text levels, e.g. {strange[0]!r}"
            )
        index = {level: float(code) for code, level in enumerate(feature.levels)}
        unknown = sorted({value for value in present if value not in index})
        if unknown and feature.unknown != "other":
            raise ValueError(
                f"{where} has {len(unknown)} values outside its levels, e.g. {unknown[0]!r}; "
                "add them to levels or set unknown: other"
            )
        other = index.get(OTHER, math.nan)
        return np.array(
            [math.nan if value is None else index.get(value, other) for value in values],
            dtype=np.float64,
        )
    try:
        array = np.array(
            [math.nan if value is None else value for value in values], dtype=np.float64
        )
    except (TypeError, ValueError):
        example = next(
            value for value in present if not _is_number(value) and not isinstance(value, bool)
        )
        raise ValueError(f"{where} has non-numeric values, e.g. {example!r}") from None
    known = array[~np.isnan(array)]
    if not np.all(np.isfinite(known)):
        raise ValueError(f"{where} has infinite values")
    outside = known[(known < feature.minimum) | (known > feature.maximum)]
    if outside.size:
        raise ValueError(
            f"{where} has {outside.size} values outside [{feature.minimum:g}, "
            f"{feature.maximum:g}], e.g. {outside[0]:g}; widen its minimum/maximum in "
            "features.yaml"
        )
    if feature.kind == "categorical":
        unknown_codes = sorted(set(known.tolist()) - {float(code) for code in feature.codes})
        if unknown_codes:
            raise ValueError(f"{where} has unknown codes {unknown_codes}")
    elif feature.type == "integer":
        fractional = known[known != np.round(known)]
        if fractional.size:
            raise ValueError(
                f"{where} has values that are not whole numbers, e.g. {fractional[0]:g}"
            )
    return array


def _raw(feature: Feature, value: Any) -> Any:
    if _is_null(value):
        return None
    if feature.string_levels:
        return value
    return float(value)


def _feature_dict(feature: Feature) -> dict[str, Any]:
    out: dict[str, Any] = {"name": feature.name}
    if feature.column is not None and feature.column != feature.name:
        out["column"] = feature.column
    out["type"] = feature.type
    if feature.type in ("number", "integer"):
        as_int = feature.type == "integer"
        out["minimum"] = (
            int(feature.minimum) if as_int and feature.minimum.is_integer() else feature.minimum
        )
        out["maximum"] = (
            int(feature.maximum) if as_int and feature.maximum.is_integer() else feature.maximum
        )
    elif feature.type == "category":
        out["levels"] = list(feature.levels)
        out["unknown"] = feature.unknown
    out["nullable"] = feature.nullable
    if feature.nullable:
        out["impute"] = feature.impute
        if feature.impute == "constant":
            out["fill_value"] = feature.fill_value
    out["description"] = feature.description
    return out


# ------------------------------------------------------------------ the file format


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Strict):
    """The ``dataset:`` section of ``features.yaml``."""

    source: str = ""
    format: DataFormat = "parquet"
    label: str
    positive_class: str = "1"
    entity: str | None = None
    timestamp: str | None = None
    entity_name: str = "row"
    feature_view: str = "features"

    @field_validator("positive_class", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return str(value).lower()
        return str(value) if _is_number(value) else value

    @field_validator("label")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("must name the label column")
        return value

    @field_validator("entity_name", "feature_view")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _KEY_PATTERN.match(value):
            raise ValueError(f"must be an identifier (letters, digits, underscores), got {value!r}")
        return value

    @field_validator("entity", "timestamp")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None


class FeatureSpec(_Strict):
    """One entry of the ``features:`` list of ``features.yaml``."""

    name: str
    column: str | None = None
    type: FeatureType
    minimum: float | None = None
    maximum: float | None = None
    levels: list[Any] | None = None
    unknown: Unknown = "reject"
    nullable: bool = False
    impute: Impute | None = None
    fill_value: Any = None
    description: str = ""


class SchemaFile(_Strict):
    """A whole ``features.yaml``."""

    dataset: DatasetSpec | None = None
    features: list[FeatureSpec]
    example: dict[str, Any] | None = None


def _path_text(path: Sequence[str | int]) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
    return text


def _pydantic_problem(error: Any, model: type[BaseModel] | None) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    given = error.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        allowed = ", ".join(model.model_fields) if model is not None else ""
        return f"unknown key (allowed: {allowed})" if allowed else "unknown key"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"must be one of {expected}, got {given!r}"
    message = str(error["msg"])
    message = message[:1].lower() + message[1:]
    message = message.removeprefix("value error, ")
    return f"{message}, got {given!r}" if kind != "value_error" else message


def _model_at(path: Sequence[str | int]) -> type[BaseModel] | None:
    """The pydantic model holding the last key of ``path`` (for 'allowed keys')."""
    if not path:
        return SchemaFile
    if path[0] == "features" and len(path) == 3:
        return FeatureSpec
    if path[0] == "dataset" and len(path) == 2:
        return DatasetSpec
    if len(path) == 1:
        return SchemaFile
    return None


def _node_line(root: yaml.Node | None, path: Sequence[str | int]) -> int | None:
    """The 1-based line of the deepest node of ``path`` in a composed YAML tree."""
    node, line = root, None if root is None else root.start_mark.line + 1
    for step in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(step):
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if step >= len(node.value):
                return line
            node = node.value[step]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _iter_features(data: SchemaFile) -> Iterator[tuple[int, Feature]]:
    for index, spec in enumerate(data.features):
        try:
            levels = tuple(spec.levels or ())
            yield (
                index,
                Feature(
                    spec.name,
                    spec.type,
                    math.nan if spec.minimum is None else spec.minimum,
                    math.nan if spec.maximum is None else spec.maximum,
                    spec.description,
                    levels=levels,
                    unknown=spec.unknown,
                    nullable=spec.nullable,
                    impute=spec.impute,
                    fill_value=spec.fill_value,
                    column=spec.column,
                ),
            )
        except FeatureProblem as problem:
            key = problem.key or "name"
            if key in ("minimum", "maximum") and getattr(spec, key) is None:
                message = f"is required for a {spec.type} (the valid range)"
            elif key == "levels" and not spec.levels:
                message = "is required for a category (its vocabulary, strings or integers)"
            else:
                message = str(problem).replace(f"feature {spec.name!r}: ", "")
            raise _Located(("features", index, key), message) from None


class _Located(Exception):
    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


def _build(data: SchemaFile) -> FeatureSchema:
    features = [feature for _, feature in _iter_features(data)]
    names = [feature.name for feature in features]
    for index, feature in enumerate(features):
        if names.index(feature.name) != index:
            raise _Located(("features", index, "name"), f"duplicate feature name {feature.name!r}")
        columns = [other.source_column for other in features[:index]]
        if feature.source_column in columns:
            raise _Located(
                ("features", index, "column"),
                f"column {feature.source_column!r} is already feature "
                f"{features[columns.index(feature.source_column)].name!r}",
            )
    dataset = None
    if data.dataset is not None:
        dataset = Dataset(**data.dataset.model_dump())
        by_column = {feature.source_column: feature.name for feature in features}
        for key in ("label", "entity", "timestamp"):
            column = getattr(dataset, key)
            if column is not None and column in set(by_column) | set(names):
                raise _Located(
                    ("dataset", key),
                    f"column {column!r} is also feature {by_column.get(column, column)!r}; "
                    "a model input cannot be the " + key,
                )
    example = dict(data.example or {})
    if example:
        for name in example:
            if name not in names:
                raise _Located(
                    ("example", name), f"is not a feature (features: {', '.join(names)})"
                )
        for feature in features:
            if feature.name not in example:
                raise _Located(("example",), f"missing feature {feature.name!r}")
            problem = feature.problem(example[feature.name])
            if problem is not None:
                raise _Located(("example", feature.name), problem)
    return FeatureSchema(tuple(features), example, dataset)


def schema_from_dict(
    data: Any, source: str = "features.yaml", root: yaml.Node | None = None
) -> FeatureSchema:
    """Validate the data of a ``features.yaml`` file and build its :class:`FeatureSchema`.

    ``root`` (the composed YAML tree) gives errors their line numbers.

    Raises:
        SchemaError: one line naming the source, line and key and what to fix.
    """
    if not isinstance(data, Mapping):
        raise SchemaError(
            source, _node_line(root, ()), "", "must be a mapping with a features: list"
        )
    try:
        parsed = SchemaFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        path = tuple(step for step in error["loc"] if isinstance(step, str | int))
        problem = _pydantic_problem(error, _model_at(path))
        raise SchemaError(source, _node_line(root, path), _path_text(path), problem) from None
    if not parsed.features:
        raise SchemaError(
            source, _node_line(root, ("features",)), "features", "needs at least one feature"
        )
    try:
        return _build(parsed)
    except _Located as located:
        line = _node_line(root, located.path)
        raise SchemaError(source, line, _path_text(located.path), located.message) from None


def parse_schema(text: str, source: str = "features.yaml") -> FeatureSchema:
    """Parse and validate the text of a ``features.yaml`` file (see :func:`load_schema`)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        raise SchemaError(source, line, "", f"not valid YAML: {exc.problem or exc}") from None
    return schema_from_dict(data, source, root)


def load_schema(path: str | Path) -> FeatureSchema:
    """Load and validate a ``features.yaml`` file.

    Raises:
        SchemaError: the file is unreadable or does not validate; the message is one line,
            ``features.yaml:LINE: KEY: problem``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(str(path), None, "", f"cannot read the schema file ({exc})") from None
    return parse_schema(text, str(path))


def dump_schema(schema: FeatureSchema) -> str:
    """The YAML text of ``schema`` (which :func:`parse_schema` reads back)."""
    return yaml.safe_dump(schema.to_dict(), sort_keys=False, allow_unicode=True, width=100)
