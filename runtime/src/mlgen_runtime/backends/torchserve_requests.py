"""TorchServe request parsing and answers for a schema-checked model (standard library only).

:mod:`mlgen_runtime.backends.torchserve_handler` uses these in TorchServe's workers; they
need neither torch nor TorchServe, so they are tested (and usable) anywhere.

A request body is one feature object, or ``{"instances": [...]}`` for a batch of at most
``max_batch_size`` objects. Every feature must be present, be a JSON number (not a string,
boolean or ``null``), finite and inside its range; a categorical feature must be one of
its integer codes; unknown keys are refused. Features are the schema's dicts (``name``,
``kind``, ``minimum``, ``maximum``), as a repository's export stores them.

Preprocessing travels with the export too: a feature dict with ``levels`` (a category
with string levels) takes one of them as a string and becomes its index; with ``other``
(the code of the ``"other"`` level, ``unknown: other``) any other string becomes that
code, without it the answer names the levels. A feature with ``nullable`` true also takes
``null`` (or may be left out), which becomes its ``fill``: the value training imputed.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from mlgen_runtime.backends import DEFAULT_MAX_BATCH_SIZE, max_batch_size_from_env

BAD_REQUEST = 400

__all__ = [
    "BAD_REQUEST",
    "DEFAULT_MAX_BATCH_SIZE",
    "Problem",
    "decode_body",
    "file_version",
    "invalid_answer",
    "max_batch_size_from_env",
    "parse_rows",
    "row_problems",
    "sampled",
    "valid_rows",
]

Problem = dict[str, Any]
"""One problem of a request: ``{"loc": [...], "msg": "..."}``."""


def file_version(path: str) -> str:
    """``sha256-<first 12 hex digits>`` of a file: the model version when none is set."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return f"sha256-{digest.hexdigest()[:12]}"


def sampled(values: list[float], limit: int) -> list[float]:
    """At most ``limit`` of ``values``, evenly spaced (all of them when they fit)."""
    if len(values) <= limit:
        return values
    step = len(values) / limit
    return [values[int(index * step)] for index in range(limit)]


def decode_body(request: Any) -> tuple[Any, list[Problem]]:
    """The JSON document of one TorchServe request, or the problem with it.

    TorchServe hands the handler ``{"body": ...}``: already parsed for a valid
    ``application/json`` body, ``bytes``/``str`` otherwise (then parsed here).
    """
    body = request.get("body", request.get("data")) if isinstance(request, dict) else request
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            return None, [{"loc": ["body"], "msg": "the body is not UTF-8 text"}]
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except json.JSONDecodeError as error:
            return None, [{"loc": ["body"], "msg": f"the body is not valid JSON: {error}"}]
    return body, []


def row_problems(row: Any, features: list[dict[str, Any]], loc: list[Any]) -> list[Problem]:
    """Everything wrong with one feature object (empty when it is valid)."""
    if not isinstance(row, dict):
        return [{"loc": loc, "msg": "an example must be an object of feature values"}]
    problems: list[Problem] = []
    names = [feature["name"] for feature in features]
    for name in sorted(set(row) - set(names)):
        problems.append({"loc": [*loc, name], "msg": "unknown feature"})
    for feature in features:
        name = feature["name"]
        where = [*loc, name]
        nullable = bool(feature.get("nullable"))
        if name not in row and not nullable:
            problems.append({"loc": where, "msg": "missing feature"})
            continue
        value = row.get(name)
        if value is None and nullable:
            continue
        levels = feature.get("levels")
        if levels is not None:
            if not isinstance(value, str) or (value not in levels and feature.get("other") is None):
                problems.append(
                    {"loc": where, "msg": f"must be one of {levels}, got {json.dumps(value)}"}
                )
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append({"loc": where, "msg": f"must be a number, got {json.dumps(value)}"})
        elif not math.isfinite(value):
            problems.append({"loc": where, "msg": f"must be a finite number, got {value}"})
        elif not feature["minimum"] <= value <= feature["maximum"]:
            problems.append(
                {
                    "loc": where,
                    "msg": f"must be between {feature['minimum']:g} and {feature['maximum']:g}, "
                    f"got {value:g}",
                }
            )
        elif feature["kind"] == "categorical" and not float(value).is_integer():
            codes = list(range(int(feature["minimum"]), int(feature["maximum"]) + 1))
            problems.append(
                {"loc": where, "msg": f"must be one of the codes {codes}, got {value:g}"}
            )
    return problems


def parse_rows(
    body: Any, features: list[dict[str, Any]], max_batch_size: int
) -> tuple[list[list[float]], list[Problem]]:
    """The encoded feature rows of one request body (in feature order), or its problems."""
    rows, problems = valid_rows(body, features, max_batch_size)
    encoded = [[_value(row.get(f["name"]), f) for f in features] for row in rows]
    return encoded, problems


def valid_rows(
    body: Any, features: list[dict[str, Any]], max_batch_size: int
) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The raw feature objects of one request body, checked, or its problems (then no
    rows): for a model that encodes raw values itself (``forward_raw``)."""
    if isinstance(body, dict) and "instances" in body:
        extra = sorted(set(body) - {"instances"})
        if extra:
            return [], [{"loc": [name], "msg": "unknown field next to instances"} for name in extra]
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            return [], [{"loc": ["instances"], "msg": "instances must be a non-empty list"}]
        if len(instances) > max_batch_size:
            return [], [
                {
                    "loc": ["instances"],
                    "msg": (
                        f"a batch holds at most {max_batch_size} instances, got {len(instances)}"
                    ),
                }
            ]
        rows, locations = instances, [["instances", index] for index in range(len(instances))]
    else:
        rows, locations = [body], [[]]
    problems = [
        p
        for row, loc in zip(rows, locations, strict=True)
        for p in row_problems(row, features, loc)
    ]
    if problems:
        return [], problems
    return list(rows), []


def _value(value: Any, feature: dict[str, Any]) -> float:
    """The model's input of one valid raw value: a level's index (an unknown string the
    ``other`` code), a null the imputed ``fill``, a number itself."""
    if value is None:
        return float(feature["fill"])
    levels = feature.get("levels")
    if levels is not None:
        return float(levels.index(value)) if value in levels else float(feature["other"])
    return float(value)


def invalid_answer(problems: list[Problem]) -> dict[str, Any]:
    """The 400 answer of a request with ``problems``: the first in ``message``, all listed."""
    first = problems[0]
    location = ".".join(str(part) for part in first["loc"]) or "body"
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return {
        "code": BAD_REQUEST,
        "type": "InvalidInput",
        "message": f"{location}: {first['msg']}{more}",
        "problems": problems,
    }
