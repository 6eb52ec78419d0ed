"""``mlgen new``: render the template into a new repository, atomically.

The template is rendered by copier itself into a hidden sibling of the destination,
then renamed into place, so a failed or interrupted run leaves nothing behind.
"""

from __future__ import annotations

import difflib
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlgen import frameworks
from mlgen.answers import validate_answers
from mlgen.errors import AnswerError, DestinationError, MlgenError
from mlgen.plugins import get_registry
from mlgen.render import render_template
from mlgen.template import question_default, question_names


def parse_answers(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Turn ``-d/--answer KEY=VALUE`` strings into a dict, one-line error for a bad pair."""
    data: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise MlgenError(f"--answer {pair!r}: expected KEY=VALUE, e.g. -d model_name=churn")
        data[key.strip()] = value
    return data


SCHEMA_ANSWERS = (
    "data_source",
    "label_column",
    "positive_class",
    "entity_column",
    "timestamp_column",
    "feature_schema",
)


def with_inferred(answers: Mapping[str, Any], inferred: Mapping[str, Any]) -> dict[str, Any]:
    """``answers`` plus the schema answers ``--data`` inferred; answering one of those with
    ``-d`` as well is refused (two sources for one answer)."""
    for key in inferred:
        if key in answers:
            raise AnswerError(key, "is inferred from --data; drop -d " + key + " or --data")
    return {**answers, **inferred}


def check_answers(data: Mapping[str, Any], template: Path) -> None:
    """Reject unknown questions, unknown backends and invalid values before rendering."""
    known = question_names(template)
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise AnswerError(
                key, f"is not a question of this template.{hint} Questions: {', '.join(known)}"
            )
    if "serving_backend" in data:
        get_registry().get_backend(str(data["serving_backend"]))
    validate_answers(data)
    check_framework(data, template)


def check_framework(data: Mapping[str, Any], template: Path) -> None:
    """Refuse a ``model_framework`` the backend cannot serve, as copier's validator does
    (with the defaults filled in: the template's backend, the backend's framework)."""
    registry = get_registry()
    backend = str(data.get("serving_backend", question_default(template, "serving_backend")))
    if backend not in registry.backends:
        return
    backends = {name: registered.backend for name, registered in registry.backends.items()}
    framework = str(data.get("model_framework", frameworks.default_framework(backends[backend])))
    problem = frameworks.pair_problem(backend, framework, backends)
    if problem:
        raise AnswerError("model_framework", problem)


def check_destination(destination: Path) -> None:
    """A new repository goes into a missing or empty folder, never over existing files."""
    if destination.exists() and not destination.is_dir():
        raise DestinationError(f"{destination} exists and is not a folder; choose a new path")
    if destination.is_dir() and any(destination.iterdir()):
        raise DestinationError(f"{destination} is not empty; choose a new or empty folder")


def generate(
    destination: Path,
    template: Path | str,
    data: Mapping[str, Any],
    *,
    defaults: bool,
    vcs_ref: str | None = None,
) -> Path:
    """Render ``template`` with ``data`` into ``destination`` and return its path."""
    destination = destination.absolute()
    check_destination(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.mlgen-", dir=destination.parent))
    try:
        render_template(template, staging, data, defaults=defaults, vcs_ref=vcs_ref)
        check_destination(destination)
        if destination.is_dir():
            destination.rmdir()
        staging.rename(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return destination
