"""Where the mlgen copier template lives, and what its questions are."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

import mlgen
from mlgen.errors import MlgenError

TEMPLATE_CONFIG = "copier.yml"


def default_template() -> Path:
    """The template shipped with this mlgen.

    A wheel carries it as package data (``mlgen/_template``); an editable install
    uses the checkout the package was installed from.
    """
    package_dir = Path(mlgen.__file__).resolve().parent
    for candidate in (package_dir / "_template", package_dir.parents[1]):
        if (candidate / TEMPLATE_CONFIG).is_file():
            return candidate
    raise FileNotFoundError(f"no {TEMPLATE_CONFIG} next to {package_dir}; reinstall mlgen")


@cache
def _load_config(template: Path) -> dict[str, Any]:
    with (template / TEMPLATE_CONFIG).open(encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    return config if isinstance(config, dict) else {}


def question_names(template: Path) -> list[str]:
    """The names of the template's questions (configuration keys start with ``_``)."""
    return [key for key in _load_config(template) if not key.startswith("_")]


def question_default(template: Path, name: str) -> Any:
    """The ``default`` of question ``name`` as copier.yml writes it (unrendered)."""
    question = _load_config(template).get(name)
    return question.get("default") if isinstance(question, dict) else None


ANSWERS_FILE = ".copier-answers.yml"

KEEP_BEHAVIOUR_ANSWERS: dict[str, Any] = {"delivery": "kustomize"}
"""Questions a later template version added whose default would change what an existing
repository does, with the answer that keeps its behaviour. ``mlgen update`` fills them in
for a repository whose answers lack them (``-d/--answer`` still chooses otherwise); a new
repository gets the question's default."""


def answers_for_update(old: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The answers to render an existing repository's update with: its recorded answers,
    the behaviour-keeping answers to questions it predates, then ``changes``."""
    kept = {key: value for key, value in KEEP_BEHAVIOUR_ANSWERS.items() if key not in old}
    return {**old, **kept, **changes}


def recorded_answers(repo: Path) -> dict[str, Any]:
    """The answers recorded in a generated repository's copier answers file."""
    path = repo / ANSWERS_FILE
    if not path.is_file():
        raise MlgenError(f"{repo} has no {ANSWERS_FILE}; is it a repository made by mlgen?")
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise MlgenError(f"{path} is not a YAML mapping; restore it from git")
    return loaded
