"""Deterministic, sticky assignment of users to the arms of an experiment.

Serving code imports only this module: it needs nothing beyond the standard library.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType

BUCKETS = 10_000
"""Hash buckets of an experiment; a split weight is a whole number of these (0.01 %)."""
DEFAULT_SPLIT: Mapping[str, float] = MappingProxyType({"control": 0.5, "treatment": 0.5})
"""The split used when none is given."""

_WEIGHT_TOLERANCE = 1e-6  # in buckets: float weights such as 0.1 + 0.2 are accepted


def validate_split(split: Mapping[str, float]) -> tuple[tuple[str, int], ...]:
    """Check a split and return each arm with its number of buckets, in order.

    A split maps arm names to weights: non-negative numbers, each a multiple of
    ``1 / BUCKETS`` (one basis point), that sum to 1.

    Raises:
        ValueError: the split is empty, an arm name is empty, or a weight is negative,
            not finite, finer than a basis point, or the weights do not sum to 1.
        TypeError: an arm name is not a string or a weight is not a number.
    """
    return _validate(tuple(split.items()))


@lru_cache(maxsize=256)
def _validate(items: tuple[tuple[str, float], ...]) -> tuple[tuple[str, int], ...]:
    if not items:
        raise ValueError("a split needs at least one arm")
    arms: list[tuple[str, int]] = []
    for name, weight in items:
        if not isinstance(name, str):
            raise TypeError(f"arm names must be strings, got {name!r}")
        if not name:
            raise ValueError("arm names must not be empty")
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
            raise TypeError(f"arm {name!r}: weight must be a number, got {weight!r}")
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"arm {name!r}: weight must be finite and >= 0, got {weight!r}")
        buckets = round(weight * BUCKETS)
        if abs(weight * BUCKETS - buckets) > _WEIGHT_TOLERANCE:
            raise ValueError(
                f"arm {name!r}: weight {weight!r} is finer than one basis point (1/{BUCKETS})"
            )
        arms.append((name, buckets))
    total = sum(buckets for _, buckets in arms)
    if total != BUCKETS:
        raise ValueError(f"split weights must sum to 1, got {sum(weight for _, weight in items)!r}")
    return tuple(arms)


def bucket(user_id: str | int, experiment: str) -> int:
    """The user's bucket in ``experiment``: ``0 <= bucket < BUCKETS``, stable everywhere.

    BLAKE2b (8-byte digest) of ``"<experiment>:<user_id>"`` modulo :data:`BUCKETS`;
    Python's ``hash()`` is salted per process and must not be used for this.
    """
    key = f"{experiment}:{user_id}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def assign(user_id: str | int, experiment: str, split: Mapping[str, float] | None = None) -> str:
    """The arm of ``experiment`` that ``user_id`` is in (sticky, deterministic).

    Args:
        user_id: a stable user (or session, or device) identifier.
        experiment: the experiment's name; a new name reshuffles every user.
        split: arm name to weight (default :data:`DEFAULT_SPLIT`, 50/50); see
            :func:`validate_split`. Arms own consecutive bucket ranges in split order.

    Raises:
        ValueError, TypeError: the split is invalid (see :func:`validate_split`).
    """
    arms = _validate(tuple((split if split is not None else DEFAULT_SPLIT).items()))
    position = bucket(user_id, experiment)
    for name, buckets in arms:
        if position < buckets:
            return name
        position -= buckets
    raise AssertionError("unreachable: bucket counts sum to BUCKETS")
