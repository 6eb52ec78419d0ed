"""Assignment: deterministic, sticky, proportional to the split, strict about weights."""

from __future__ import annotations

import pytest

from mlgen_runtime.ab.assignment import BUCKETS, assign, bucket, validate_split


def test_assignment_is_deterministic_and_sticky() -> None:
    arms = [assign(user, "exp-1") for user in range(2000)]
    assert arms == [assign(user, "exp-1") for user in range(2000)]
    assert set(arms) == {"control", "treatment"}
    assert 0.45 < arms.count("treatment") / len(arms) < 0.55


def test_bucket_is_stable_across_processes() -> None:
    # BLAKE2b of "exp:42" (a fixed value: Python's salted hash() would change per run)
    assert bucket(42, "exp") == bucket("42", "exp")
    assert 0 <= bucket("user", "exp") < BUCKETS


def test_split_shares_follow_the_weights() -> None:
    split = {"a": 0.1, "b": 0.2, "c": 0.7}
    arms = [assign(user, "weights", split) for user in range(20_000)]
    for name, weight in split.items():
        assert abs(arms.count(name) / len(arms) - weight) < 0.02


@pytest.mark.parametrize(
    ("split", "error", "message"),
    [
        ({}, ValueError, "at least one arm"),
        ({"": 1.0}, ValueError, "must not be empty"),
        ({"a": -0.5, "b": 1.5}, ValueError, "finite and >= 0"),
        ({"a": 0.00001, "b": 0.99999}, ValueError, "finer than one basis point"),
        ({"a": 0.5, "b": 0.6}, ValueError, "sum to 1"),
        ({"a": "half", "b": 0.5}, TypeError, "must be a number"),
    ],
)
def test_bad_splits_are_refused(split: dict[str, object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        validate_split(split)  # type: ignore[arg-type]
