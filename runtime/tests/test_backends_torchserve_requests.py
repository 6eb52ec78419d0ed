"""mlgen_runtime.backends.torchserve_requests: what TorchServe's handler accepts and refuses.

The handler itself (torch, TorchServe's ``ts``) runs in the TorchServe backend's
generated suite, in-process and in a real TorchServe."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from mlgen_runtime.backends import torchserve_requests as requests

FEATURES = [
    {"name": "age", "kind": "numeric", "minimum": 0.0, "maximum": 120.0},
    {"name": "plan", "kind": "categorical", "minimum": 0.0, "maximum": 2.0},
]
ROW = {"age": 30.0, "plan": 1.0}


def problems_of(body: Any, max_batch_size: int = 256) -> list[dict[str, Any]]:
    rows, problems = requests.parse_rows(body, FEATURES, max_batch_size)
    assert bool(rows) != bool(problems)
    return problems


def test_a_row_and_a_batch_parse_in_feature_order() -> None:
    assert requests.parse_rows({"plan": 2, "age": 5}, FEATURES, 8) == ([[5.0, 2.0]], [])
    rows, _ = requests.parse_rows({"instances": [ROW, {**ROW, "age": 1.0}]}, FEATURES, 8)
    assert rows == [[30.0, 1.0], [1.0, 1.0]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"age": "7"}, "must be a number"),
        ({"age": True}, "must be a number"),
        ({"age": None}, "must be a number"),
        ({"age": math.nan}, "finite"),
        ({"age": -1.0}, "between 0 and 120"),
        ({"plan": 1.5}, "one of the codes [0, 1, 2]"),
        ({"shoe_size": 42.0}, "unknown feature"),
    ],
)
def test_invalid_values_are_refused(change: dict[str, Any], message: str) -> None:
    problems = problems_of({**ROW, **change})
    assert any(message in p["msg"] for p in problems), problems


def test_missing_features_are_each_reported() -> None:
    assert sorted(p["loc"][-1] for p in problems_of({})) == ["age", "plan"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"instances": []}, "non-empty"),
        ({"instances": "rows"}, "non-empty"),
        ({"instances": [{}] * 3}, "missing feature"),
        ({"instances": [ROW], "extra": 1}, "unknown field"),
        ([ROW], "object of feature values"),
        ({"instances": [ROW] * 4}, "at most 3 instances"),
    ],
)
def test_invalid_batches_are_refused(body: Any, message: str) -> None:
    assert any(message in p["msg"] for p in problems_of(body, max_batch_size=3))


def test_problems_name_the_row_and_the_answer_lists_them() -> None:
    problems = problems_of({"instances": [ROW, {**ROW, "plan": 7.0, "age": -1.0}]})
    assert problems[0]["loc"] == ["instances", 1, "age"]
    answer = requests.invalid_answer(problems)
    assert answer["code"] == 400 and answer["type"] == "InvalidInput"
    assert (
        answer["message"].startswith("instances.1.age: must be between")
        and "(+1 more)" in (answer["message"])
    )
    assert answer["problems"] == problems


def test_decode_body() -> None:
    assert requests.decode_body({"body": {"a": 1}}) == ({"a": 1}, [])
    assert requests.decode_body({"body": bytearray(b'{"a": 1}')}) == ({"a": 1}, [])
    assert requests.decode_body({"data": '{"a": 1}'}) == ({"a": 1}, [])
    assert "not valid JSON" in requests.decode_body({"body": b"{not json"})[1][0]["msg"]
    assert "not UTF-8" in requests.decode_body({"body": b"\xff"})[1][0]["msg"]


def test_sampled_keeps_an_evenly_spaced_subset() -> None:
    assert requests.sampled([0.1, 0.2, 0.3, 0.4], 2) == [0.1, 0.3]
    assert requests.sampled([0.1], 16) == [0.1]


def test_file_version_and_batch_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model.pt").write_bytes(b"")
    version = requests.file_version(str(tmp_path / "model.pt"))
    assert version == "sha256-e3b0c44298fc"  # SHA-256 of nothing
    monkeypatch.setenv("MAX_BATCH_SIZE", "3")
    assert requests.max_batch_size_from_env() == 3
    monkeypatch.setenv("MAX_BATCH_SIZE", "zero")
    with pytest.raises(ValueError, match="MAX_BATCH_SIZE"):
        requests.max_batch_size_from_env()
    monkeypatch.delenv("MAX_BATCH_SIZE")
    assert requests.max_batch_size_from_env() == requests.DEFAULT_MAX_BATCH_SIZE


RAW = [
    {"name": "island", "kind": "categorical", "minimum": 0.0, "maximum": 3.0,
     "levels": ["Biscoe", "Dream", "Torgersen", "other"], "other": 3,
     "nullable": True, "fill": 1.0},
    {"name": "sex", "kind": "categorical", "minimum": 0.0, "maximum": 1.0,
     "levels": ["female", "male"], "other": None},
    {"name": "bill", "kind": "numeric", "minimum": 20.0, "maximum": 70.0,
     "nullable": True, "fill": 44.5},
]  # fmt: skip


def test_raw_rows_become_codes_and_imputed_values() -> None:
    """What an export with preprocessing stores: levels by index, an unknown level as the
    other code, a null (or a left-out nullable key) as the imputed fill."""
    body = {
        "instances": [
            {"island": "Torgersen", "sex": "male", "bill": None},
            {"island": "Atlantis", "sex": "female", "bill": 38.5},
            {"island": None, "sex": "female"},
        ]
    }
    rows, problems = requests.parse_rows(body, RAW, 8)
    assert problems == []
    assert rows == [[2.0, 1.0, 44.5], [3.0, 0.0, 38.5], [1.0, 0.0, 44.5]]
    # A model that encodes raw values itself (forward_raw) gets the checked rows as sent.
    assert requests.valid_rows(body, RAW, 8) == (body["instances"], [])


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"island": "Dream", "sex": "x", "bill": 40},
            "must be one of ['female', 'male'], got \"x\"",
        ),
        (
            {"island": "Dream", "sex": None, "bill": 40},
            "must be one of ['female', 'male'], got null",
        ),
        ({"island": 2, "sex": "male", "bill": 40}, "must be one of ['Biscoe'"),
        ({"island": "Dream", "bill": 40}, "missing feature"),
        ({"island": "Dream", "sex": "male", "bill": "40"}, "must be a number"),
    ],
)
def test_raw_values_outside_the_schema_are_refused(row: dict[str, Any], message: str) -> None:
    rows, problems = requests.parse_rows(row, RAW, 8)
    assert rows == [] and len(problems) == 1
    assert message in problems[0]["msg"]
    assert requests.valid_rows(row, RAW, 8) == ([], problems)
