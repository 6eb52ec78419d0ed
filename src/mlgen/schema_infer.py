"""Infer a model repository's feature schema from the user's table.

``mlgen new DIR --data PATH --label COLUMN`` and ``mlgen schema infer PATH --label
COLUMN`` call :func:`infer_answers`: it reads the table with
:func:`mlgen_runtime.table.read_table` and returns the copier answers the template renders
``features.yaml`` from (``data_source``, ``label_column``, ``positive_class``,
``entity_column``, ``timestamp_column``, ``feature_schema``). What it cannot turn into a
sound schema (a missing or non-binary label, a constant, empty or mixed-type column) is a
:class:`SchemaInferenceError`: one line naming the column and the fix.
"""

from __future__ import annotations

import keyword
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgen.errors import MlgenError

if TYPE_CHECKING:
    import pyarrow as pa

MAX_LEVELS = 20  # most frequent levels kept per category; the rest map to "other"
OTHER = "other"
ID_ROWS = 20  # a text column this long with no value repeated is an id, not a category
MARGIN = 0.1  # ranges widen by this share of the observed span on each side
DEMO_SOURCE = ""  # data_source "" = the template's demo table


class SchemaInferenceError(MlgenError):
    """The table cannot be turned into a schema; one line naming the column and the fix."""


@dataclass
class Inferred:
    """What inference found: the copier answers plus a summary for the user."""

    answers: dict[str, Any]
    rows: int
    summary: list[list[str]] = field(default_factory=list)  # name, column, type, values, nulls


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def read(source: str) -> pa.Table:
    """The table at ``source`` (Parquet or CSV, path or URL), or a one-line error."""
    try:
        from mlgen_runtime.table import TableError, read_table
    except ImportError as error:  # pragma: no cover - an install without the runtime
        raise SchemaInferenceError(
            "--data needs mlgen-runtime with pyarrow: pip install './runtime[table]'"
        ) from error
    try:
        return read_table(source)
    except TableError as error:
        raise SchemaInferenceError(_one_line(error)) from error


def identifier(column: str, taken: set[str]) -> str:
    """A lower-case Python identifier for ``column``, not in ``taken`` (which it joins)."""
    name = re.sub(r"[^0-9a-zA-Z]+", "_", column).strip("_").lower() or "feature"
    if name[0].isdigit():
        name = f"f_{name}"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        name = f"{name}_"
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}_{number}", number + 1
    taken.add(candidate)
    return candidate


def _round_out(value: float, step: float, up: bool) -> float:
    digits = max(0, -math.floor(math.log10(step)))
    scaled = math.ceil(value / step - 1e-9) if up else math.floor(value / step + 1e-9)
    return round(scaled * step, digits)


def value_range(low: float, high: float, integer: bool) -> tuple[float | int, float | int]:
    """The observed ``[low, high]`` widened by :data:`MARGIN` of the span on each side,
    rounded outward; a non-negative column stays non-negative."""
    margin = (high - low) * MARGIN
    if integer:
        minimum, maximum = math.floor(low - margin), math.ceil(high + margin)
        return (max(minimum, 0) if low >= 0 else minimum), maximum
    step = 10.0 ** (math.floor(math.log10(high - low)) - 2)
    minimum_f = _round_out(low - margin, step, up=False)
    maximum_f = _round_out(high + margin, step, up=True)
    return (max(minimum_f, 0.0) if low >= 0 else minimum_f), maximum_f


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _present(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The column's values without nulls (a float NaN counts as null)."""
    import pyarrow.compute as pc

    return pc.filter(column, pc.invert(pc.is_null(column, nan_is_null=True)))


def _counts(values: pa.ChunkedArray) -> Counter[Any]:
    """How often each value occurs (computed by pyarrow: a table may be large)."""
    import pyarrow.compute as pc

    counted = pc.value_counts(values)
    return Counter(
        dict(
            zip(
                counted.field("values").to_pylist(),
                counted.field("counts").to_pylist(),
                strict=True,
            )
        )
    )


def _refuse_exclude(column: str, why: str) -> SchemaInferenceError:
    return SchemaInferenceError(
        f"column {column!r}: {why}; leave it out with --exclude {_quote(column)}"
    )


def _quote(column: str) -> str:
    return f"'{column}'" if re.search(r"[^\w.-]", column) else column


def _kind(column: str, arrow_type: pa.DataType, present: pa.ChunkedArray) -> str:
    import pyarrow as pa

    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "number"
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        distinct = list(_counts(present))
        numbers = [value for value in distinct if _is_number(str(value))]
        if numbers and len(numbers) < len(distinct):
            text = next(str(value) for value in distinct if not _is_number(str(value)))
            raise _refuse_exclude(
                column,
                f"mixes numbers ({numbers[0]!r}) and text ({text!r}); make every value a "
                "number (or every value text)",
            )
        return "category"
    if pa.types.is_temporal(arrow_type):
        raise SchemaInferenceError(
            f"column {column!r} holds times ({arrow_type}); give it as --timestamp "
            f"{_quote(column)} or leave it out with --exclude {_quote(column)}"
        )
    raise _refuse_exclude(column, f"has type {arrow_type}, which is not a model input")


def _feature(
    column: str, name: str, data: pa.ChunkedArray, rows: int
) -> tuple[dict[str, Any], list[str]]:
    import pyarrow.compute as pc

    present = _present(data)
    if len(present) == 0:
        raise _refuse_exclude(column, "has no values (every row is null)")
    kind = _kind(column, data.type, present)
    extremes = pc.min_max(present) if kind != "category" else None
    if kind == "category":
        counts = Counter({str(value): count for value, count in _counts(present).items()})
        constant = next(iter(counts)) if len(counts) == 1 else None
    elif extremes is not None and extremes["min"] == extremes["max"]:
        constant = extremes["min"].as_py()
    else:
        constant = None
    if constant is not None:
        raise _refuse_exclude(column, f"is constant (every value is {constant!r})")
    if kind == "category" and len(present) >= ID_ROWS and len(counts) == len(present):
        raise SchemaInferenceError(
            f"column {column!r}: every value is different (an id or free text?), so it is no"
            f" category; give it as --entity {_quote(column)} or leave it out with --exclude"
            f" {_quote(column)}"
        )
    missing = rows - len(present)
    feature: dict[str, Any] = {"name": name}
    if name != column:
        feature["column"] = column
    feature["type"] = kind
    if kind in ("number", "integer") and extremes is not None:
        low, high = extremes["min"].as_py(), extremes["max"].as_py()
        feature["minimum"], feature["maximum"] = value_range(
            float(low), float(high), kind == "integer"
        )
        shown = f"{feature['minimum']} .. {feature['maximum']}"
        observed = f"observed {_number(low)} to {_number(high)}"
    elif kind == "category":
        frequent = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:MAX_LEVELS]
        kept = sorted(level for level, _ in frequent)
        levels = [*kept, OTHER] if OTHER not in kept else kept
        feature["levels"] = levels
        feature["unknown"] = OTHER
        dropped = len(counts) - len(kept)
        shown = ", ".join(levels[:6]) + (", ..." if len(levels) > 6 else "")
        observed = f"{len(counts)} levels" + (
            f", the {dropped} rarest map to {OTHER!r}" if dropped else ""
        )
    else:
        shown, observed = "true, false", "true or false"
    feature["nullable"] = missing > 0
    if missing:
        feature["impute"] = "median" if kind in ("number", "integer") else "most_frequent"
    feature["description"] = f"{column}: {kind}, {observed} in the training table" + (
        f", {missing} of {rows} missing." if missing else "."
    )
    nulls = f"{missing} ({feature['impute']})" if missing else "0"
    return feature, [name, column if name != column else "", kind, shown, nulls]


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _example(features: list[dict[str, Any]], table: pa.Table) -> dict[str, Any]:
    """The first row with no nulls and its categories within the levels; else row 0."""
    import pyarrow as pa
    import pyarrow.compute as pc

    complete = pa.chunked_array([pa.array([True] * table.num_rows)])
    for feature in features:
        data = table.column(feature.get("column", feature["name"]))
        good = pc.invert(pc.is_null(data, nan_is_null=True))
        if feature["type"] == "category":
            inside = pc.is_in(pc.cast(data, pa.string()), value_set=pa.array(feature["levels"]))
            good = pc.and_(good, inside)
        complete = pc.and_(complete, pc.fill_null(good, False))
    index = pc.index(complete, True).as_py()
    row = table.slice(max(index, 0), 1).to_pylist()[0]
    example: dict[str, Any] = {}
    for feature in features:
        value = row[feature.get("column", feature["name"])]
        if _missing(value):
            value = None
        elif feature["type"] == "category":
            value = str(value) if str(value) in feature["levels"] else OTHER
        elif feature["type"] == "number":
            value = float(value)
        elif feature["type"] == "integer":
            value = int(value)
        else:
            value = bool(value)
        example[feature["name"]] = value
    return example


def _require(table: pa.Table, column: str | None, option: str) -> None:
    if column is not None and column not in table.column_names:
        close = [name for name in table.column_names if name.lower() == column.lower()]
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise SchemaInferenceError(
            f"{option} {column!r}: no such column in the table; {hint}columns: "
            + ", ".join(table.column_names)
        )


def _label_text(value: Any) -> str:
    """A label value as ``positive_class`` records it (booleans as ``true``/``false``,
    as ``mlgen_runtime.schema`` reads them)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _label(table: pa.Table, label: str, positive_class: str | None) -> str:
    present = _present(table.column(label))
    missing = table.num_rows - len(present)
    if missing:
        raise SchemaInferenceError(
            f"--label {label!r}: {missing} rows have no label; drop them from the table"
        )
    counts: Counter[str] = Counter()
    for value, count in _counts(present).items():
        counts[_label_text(value)] += count
    shown = ", ".join(sorted(counts)[:5]) + (", ..." if len(counts) > 5 else "")
    if len(counts) < 2:
        raise SchemaInferenceError(
            f"--label {label!r} has {len(counts)} classes ({shown}): a binary classifier "
            "needs two; give a column with two values"
        )
    if positive_class is not None:
        if positive_class not in counts:
            raise SchemaInferenceError(
                f"--positive-class {positive_class!r} is not a value of label {label!r}; "
                f"use one of {', '.join(sorted(counts))}"
            )
        # More classes than two: this one against the rest (the runtime's labels are
        # ``label == positive_class``), so "species is Adelie" needs no derived column.
        return positive_class
    if len(counts) > 2:
        raise SchemaInferenceError(
            f"--label {label!r} has {len(counts)} classes ({shown}): binary classification "
            "only, for now; name the class to predict against the rest with "
            f"--positive-class (e.g. --positive-class {sorted(counts)[0]})"
        )
    for usual in ("1", "true", "yes", "Yes", "1.0"):
        if usual in counts:
            return usual
    # Otherwise the rarer class (the event to predict); a tie takes the later value.
    return min(sorted(counts, reverse=True), key=lambda value: counts[value])


def data_source(source: str, repo: Path | None = None) -> str:
    """``source`` as the repository records it: a URL as is; a local path absolute, or
    relative to ``repo`` when the file lies inside it; a folder with a trailing ``/``."""
    scheme, separator, _ = source.partition("://")
    if separator and len(scheme) > 1:
        return source
    path = Path(source).expanduser().resolve()
    folder = "/" if path.is_dir() else ""  # a folder of Parquet files ends in "/"
    if repo is not None:
        try:
            return path.relative_to(repo.resolve()).as_posix() + folder
        except ValueError:
            pass
    return str(path) + folder


def infer_table(
    table: pa.Table,
    *,
    label: str,
    positive_class: str | None = None,
    entity: str | None = None,
    timestamp: str | None = None,
    exclude: Sequence[str] = (),
) -> Inferred:
    """The schema answers (without ``data_source``) for ``table``."""
    import pyarrow as pa

    seen: set[str] = set()
    for column in table.column_names:
        if column in seen:
            raise SchemaInferenceError(
                f"column {column!r} appears twice in the table; give every column its own name"
            )
        seen.add(column)
    _require(table, label, "--label")
    _require(table, entity, "--entity")
    _require(table, timestamp, "--timestamp")
    for column in exclude:
        _require(table, column, "--exclude")
    roles = {"--label": label, "--entity": entity, "--timestamp": timestamp}
    used = [value for value in roles.values() if value is not None]
    for option, column in roles.items():
        if column is not None and (used.count(column) > 1 or column in exclude):
            raise SchemaInferenceError(
                f"{option} {column!r}: the column is given twice; a column has one role"
            )
    if timestamp is not None and not pa.types.is_temporal(table.column(timestamp).type):
        raise SchemaInferenceError(
            f"--timestamp {timestamp!r} is not a time column ({table.column(timestamp).type});"
            " give ISO 8601 times such as 2024-05-01T12:00:00"
        )
    chosen_class = _label(table, label, positive_class)
    taken = {identifier(column, set()) for column in used}
    features: list[dict[str, Any]] = []
    summary: list[list[str]] = []
    for column in table.column_names:
        if column in used or column in exclude:
            continue
        feature, line = _feature(
            column, identifier(column, taken), table.column(column), len(table)
        )
        features.append(feature)
        summary.append(line)
    if not features:
        raise SchemaInferenceError(
            "the table has no feature columns besides the label, entity and timestamp; "
            "give a table with at least one input column"
        )
    answers = {
        "label_column": label,
        "positive_class": chosen_class,
        "entity_column": entity or "",
        "timestamp_column": timestamp or "",
        "feature_schema": {"features": features, "example": _example(features, table)},
    }
    return Inferred(answers=answers, rows=len(table), summary=summary)


def infer_answers(
    source: str | os.PathLike[str],
    *,
    label: str,
    positive_class: str | None = None,
    entity: str | None = None,
    timestamp: str | None = None,
    exclude: Sequence[str] = (),
    repo: Path | None = None,
) -> Inferred:
    """Read ``source`` and infer its schema answers, ``data_source`` included."""
    table = read(str(source))
    inferred = infer_table(
        table,
        label=label,
        positive_class=positive_class,
        entity=entity,
        timestamp=timestamp,
        exclude=exclude,
    )
    inferred.answers = {"data_source": data_source(str(source), repo), **inferred.answers}
    return inferred


def summary(inferred: Inferred) -> tuple[str, list[str], list[list[str]]]:
    """What was inferred, for the terminal: a dataset line, then a table (headers, rows)."""
    answers = inferred.answers
    head = (
        f"Inferred from {answers.get('data_source') or 'the demo table'} ({inferred.rows} rows):"
        f" label {answers['label_column']!r} (positive class {answers['positive_class']!r}),"
        f" entity {answers['entity_column'] or '(row number)'},"
        f" timestamp {answers['timestamp_column'] or '(fixed)'}"
    )
    return head, ["feature", "column", "type", "range / levels", "nulls (impute)"], inferred.summary


def rewrite_schema(repo: Path, answers: dict[str, Any]) -> list[tuple[str, str]]:
    """Re-render ``repo`` with the inferred schema ``answers`` (``mlgen update -d ...``):
    features.yaml, the answers file and whatever else they feed. All or nothing: a
    conflict with a local edit is refused before anything is written.

    Returns:
        ``(action, path)`` for each file changed.
    """
    from mlgen.update import apply_plan, plan_update

    plan = plan_update(repo, data=answers)
    conflicted = plan.paths("conflict")
    if conflicted:
        raise SchemaInferenceError(
            f"{conflicted[0]}: your edits conflict with the inferred schema; commit the"
            " repository with them reverted (git checkout -- FILE) and run again"
            + (f" ({len(conflicted)} files conflict)" if len(conflicted) > 1 else "")
        )
    if plan.changes:
        apply_plan(plan)
    return [(change.action, change.path) for change in plan.changes]
