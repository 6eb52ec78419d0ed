"""Validation of copier answers, shared by the copier questions and ``mlgen new``.

Each validator returns ``""`` for a valid value or one sentence saying what is allowed,
so copier's ``validator:`` fields and mlgen's own pre-flight check print the same text.
"""

from __future__ import annotations

import keyword
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from mlgen.errors import AnswerError
from mlgen.frameworks import framework_names

MODEL_NAME_MAX = 40  # leaves room for suffixes such as "-canary" in 63-character k8s names
_DNS_LABEL = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_JINJA_MARKERS = ("{{", "}}", "{%", "%}", "{#", "#}")
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_NAMES = ("minute", "hour", "day of month", "month", "day of week")

Validator = Callable[[Any], str]


def _dns_label(value: Any, max_length: int = 63) -> str:
    text = str(value)
    if not text:
        return "must not be empty"
    if len(text) > max_length:
        return f"{text!r} is {len(text)} characters; use at most {max_length}"
    if not _DNS_LABEL.match(text):
        return (
            f"{text!r} is not a DNS-1123 label; use lower-case letters, digits and '-', "
            "starting with a letter and ending with a letter or digit"
        )
    return ""


def _model_name(value: Any) -> str:
    return _dns_label(value, MODEL_NAME_MAX)


def _package_name(value: Any) -> str:
    text = str(value)
    if not _IDENTIFIER.match(text) or len(text) > 60:
        return (
            f"{text!r} is not a valid package name; use lower-case letters, digits and '_', "
            "starting with a letter"
        )
    if keyword.iskeyword(text) or keyword.issoftkeyword(text):
        return f"{text!r} is a Python keyword; choose another package name"
    return ""


def _free_text(value: Any) -> str:
    text = str(value)
    if any(marker in text for marker in _JINJA_MARKERS):
        return "must not contain Jinja markers such as '{{', '{%' or '{#'"
    if "\n" in text or "\r" in text:
        return "must be a single line"
    if any(unicodedata.category(character) in ("Cc", "Cs") for character in text):
        return "must be printable text (no control characters)"
    if len(text) > 300:
        return f"is {len(text)} characters; use at most 300"
    return ""


def _number_in(
    low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> Validator:
    left, right = ("(" if low_open else "["), (")" if high_open else "]")

    def check(value: Any) -> str:
        if isinstance(value, bool):
            number = math.nan
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
        too_low = number <= low if low_open else number < low
        too_high = number >= high if high_open else number > high
        if math.isnan(number) or too_low or too_high:
            return f"{value!r} is not a number in {left}{low:g}, {high:g}{right}"
        return ""

    return check


def _integer_in(low: int, high: int) -> Validator:
    def check(value: Any) -> str:
        if isinstance(value, bool) or not re.fullmatch(r"[+-]?\d+", str(value).strip()):
            return f"{value!r} is not a whole number from {low} to {high}"
        if not low <= int(str(value)) <= high:
            return f"{value!r} is not a whole number from {low} to {high}"
        return ""

    return check


def _one_of(*choices: str) -> Validator:
    def check(value: Any) -> str:
        if value not in choices:
            return f"{value!r} is not one of {', '.join(choices)}"
        return ""

    return check


def _cron_field(text: str, low: int, high: int) -> bool:
    for part in text.split(","):
        base, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            return False
        if base == "*":
            continue
        start, _, end = base.partition("-")
        if not start.isdigit() or (end and not end.isdigit()):
            return False
        first, last = int(start), int(end or start)
        if not (low <= first <= high and low <= last <= high and first <= last):
            return False
    return True


def _cron(value: Any) -> str:
    fields = str(value).split()
    if len(fields) != 5:
        return (
            f"{value!r} is not a 5-field cron expression (minute hour day-of-month "
            "month day-of-week), e.g. '0 3 * * 1'"
        )
    for text, (low, high), name in zip(fields, _CRON_RANGES, _CRON_NAMES, strict=True):
        if not _cron_field(text, low, high):
            return f"{value!r}: cron {name} field {text!r} is not valid (allowed {low}-{high})"
    return ""


def _quantity(pattern: str, example: str) -> Validator:
    def check(value: Any) -> str:
        text = str(value).strip()
        if (
            isinstance(value, bool)
            or not re.fullmatch(pattern, text)
            or not any(character in "123456789" for character in text.rstrip("mKMGTi"))
        ):
            return f"{value!r} is not a Kubernetes quantity like {example}"
        return ""

    return check


_TABLE_SUFFIXES = (".parquet", ".pq", ".parq", ".csv", ".csv.gz", ".csv.bz2", ".csv.zst")


def _data_source(value: Any) -> str:
    text = str(value)
    problem = _free_text(text)
    if problem or not text:
        return problem
    name = text.split("?", 1)[0].lower()
    if not (name.endswith(_TABLE_SUFFIXES) or name.endswith("/")):
        return (
            f"{text!r} is not a .parquet or .csv file (nor a folder ending in '/'); "
            "name the table's file, or leave it empty for the demo"
        )
    return ""


def _column(required: bool) -> Validator:
    def check(value: Any) -> str:
        text = "" if value is None else str(value)
        if required and not text:
            return "must name a column of the table"
        return _free_text(text)

    return check


def _feature_schema(value: Any) -> str:
    """The features and example of features.yaml; checked in full by the runtime's
    loader when it is installed (the generated repository checks it on import anyway)."""
    if not isinstance(value, Mapping) or not isinstance(value.get("features"), list):
        return "must be a mapping with a features: list (and an example: row), as in features.yaml"
    if not value["features"]:
        return "features: needs at least one feature"
    extra = sorted(set(value) - {"features", "example"})
    if extra:
        return f"unknown key(s) {', '.join(map(str, extra))}; only features: and example:"
    try:
        from mlgen_runtime.schema import SchemaError, schema_from_dict
    except ImportError:  # mlgen without the runtime: the repository's loader checks it
        return ""
    try:
        schema_from_dict(dict(value), source="feature_schema")
    except SchemaError as error:
        return f"{error.key}: {error.problem}" if error.key else error.problem
    return ""


VALIDATORS: dict[str, Validator] = {
    "model_name": _model_name,
    "package_name": _package_name,
    "description": _free_text,
    "k8s_namespace": _dns_label,
    "canary_weight_percent": _integer_in(1, 50),
    "latency_slo_p95_ms": _number_in(0, 60_000, low_open=True),
    "error_rate_slo": _number_in(0, 1, low_open=True, high_open=True),
    "delivery": _one_of("argo-rollouts", "kustomize"),
    "model_framework": _one_of(*framework_names()),
    "observation_window_minutes": _integer_in(5, 1440),
    "min_roc_auc": _number_in(0.5, 1, low_open=True),
    "psi_threshold": _number_in(0, 10, low_open=True),
    "ks_pvalue_threshold": _number_in(0, 1, low_open=True, high_open=True),
    "retrain_schedule": _cron,
    "retrain_min_new_rows": _integer_in(1, 1_000_000_000),
    "materialize_schedule": _cron,
    "training_cpu": _quantity(r"\d+(\.\d+)?|\d+m", "'2', '0.5' or '500m'"),
    "training_memory": _quantity(r"\d+(Ki|Mi|Gi|Ti)", "'4Gi' or '512Mi'"),
    "data_source": _data_source,
    "label_column": _column(required=True),
    "positive_class": _column(required=True),
    "entity_column": _column(required=False),
    "timestamp_column": _column(required=False),
    "feature_schema": _feature_schema,
}


def validation_message(field: str, value: Any) -> str:
    """``""`` if ``value`` is valid for ``field``, else one line saying what is allowed.

    copier prefixes it with the question's name; :func:`validate_answers` does the same.
    """
    validator = VALIDATORS.get(field)
    return validator(value) if validator else ""


def validate_answers(answers: Mapping[str, Any]) -> None:
    """Raise :class:`AnswerError` for the first invalid answer in ``answers``."""
    for field, value in answers.items():
        problem = validation_message(field, value)
        if problem:
            raise AnswerError(field, problem)
