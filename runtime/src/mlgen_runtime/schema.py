"""Feature schema objects: what a model's inputs are, and how rows become its matrix.

A generated repository declares its features once (``<package>/features.py``) as a
:class:`FeatureSchema`; training, the exported artifact's input width, the serving API's
request model and the drift profile all derive from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

FeatureKind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class Feature:
    """One model input.

    Attributes:
        name: the column name; also the field name in serving requests.
        kind: ``"numeric"`` (any real value in range) or ``"categorical"`` (an integer
            code ``minimum..maximum``; the codes are listed in ``description``).
        minimum: the smallest value accepted.
        maximum: the largest value accepted.
        description: what the value means, with its unit or codes.
    """

    name: str
    kind: FeatureKind
    minimum: float
    maximum: float
    description: str

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"feature name {self.name!r} must be a Python identifier")
        if self.kind not in ("numeric", "categorical"):
            raise ValueError(f"feature {self.name!r}: unknown kind {self.kind!r}")
        if not self.minimum < self.maximum:
            raise ValueError(f"feature {self.name!r}: minimum must be below maximum")
        if self.kind == "categorical" and not (
            float(self.minimum).is_integer() and float(self.maximum).is_integer()
        ):
            raise ValueError(f"feature {self.name!r}: categorical bounds must be integers")

    @property
    def levels(self) -> tuple[int, ...]:
        """The integer codes of a categorical feature (empty for a numeric one)."""
        if self.kind != "categorical":
            return ()
        return tuple(range(int(self.minimum), int(self.maximum) + 1))

    def problem(self, value: float) -> str | None:
        """Why ``value`` is not acceptable for this feature, or ``None`` when it is."""
        if not math.isfinite(value):
            return f"{self.name} must be a finite number, got {value}"
        if not self.minimum <= value <= self.maximum:
            return (
                f"{self.name} must be between {self.minimum:g} and {self.maximum:g}, got {value:g}"
            )
        if self.kind == "categorical" and not float(value).is_integer():
            return (
                f"{self.name} must be one of the integer codes {list(self.levels)}, got {value:g}"
            )
        return None


@dataclass(frozen=True)
class FeatureSchema:
    """A model's features, in the column order of its input matrix.

    Attributes:
        features: the features, in column order.
        example: one valid row (for smoke tests, documentation and API examples).
    """

    features: tuple[Feature, ...]
    example: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [feature.name for feature in self.features]
        if not names:
            raise ValueError("a feature schema needs at least one feature")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate feature name(s): {', '.join(duplicates)}")
        if self.example:
            self.to_matrix([self.example])  # an invalid example fails at import, not later

    @property
    def names(self) -> tuple[str, ...]:
        """The feature names, in column order."""
        return tuple(feature.name for feature in self.features)

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

    def example_row(self) -> dict[str, float]:
        """A copy of the example row (the midpoint of every range when none is given)."""
        if self.example:
            return {name: float(self.example[name]) for name in self.names}
        return {
            feature.name: float(round((feature.minimum + feature.maximum) / 2))
            if feature.kind == "categorical"
            else (feature.minimum + feature.maximum) / 2
            for feature in self.features
        }

    def to_matrix(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Turn rows of named feature values into the model's input matrix.

        Args:
            rows: one mapping per example, with exactly the keys of :attr:`names`.

        Returns:
            A C-contiguous ``float32`` array of shape ``(len(rows), width)``, columns in
            schema order.

        Raises:
            ValueError: a row lacks a feature, has an unknown key, or has a value that is
                not finite or out of range (the message names the row and the feature).
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
                value = float(row[feature.name])
                problem = feature.problem(value)
                if problem is not None:
                    raise ValueError(f"row {index}: {problem}")
                matrix[index, column] = value
        return matrix
