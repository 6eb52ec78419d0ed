"""Where the mlgen copier template lives, and what its questions are."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

import mlgen

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
