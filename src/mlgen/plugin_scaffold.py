"""``mlgen plugin new``: scaffold a backend plugin package from the copier template
``mlgen/plugin_template`` (kept in this repository, shipped with mlgen).

The scaffold is self-contained: its backend files (a small ONNX backend on FastAPI,
its smoke test on ``mlgen_runtime.process``) live in the scaffold template itself, so
scaffolding imports no installed backend plugin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment
from jinja2.ext import Extension

from mlgen import __version__, hookspecs
from mlgen.answers import validation_message
from mlgen.backend import BACKEND_NAME
from mlgen.errors import MlgenError
from mlgen.generate import check_destination, generate

SCAFFOLD_TEMPLATE = Path(__file__).resolve().parent / "plugin_template"


def _validate_backend_name(name: str) -> str:
    if not BACKEND_NAME.fullmatch(str(name)):
        return (
            f"{name!r} is not a backend name; use lower-case letters, digits, '-' or '_', "
            "starting with a letter, at most 31 characters"
        )
    return ""


class ScaffoldExtension(Extension):
    """Globals for the scaffold template: validators and the plugin API version."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.globals.update(
            mlgen_validate_backend_name=_validate_backend_name,
            mlgen_validate_free_text=lambda text: validation_message("description", text),
            mlgen_plugin_api=lambda: hookspecs.PLUGIN_API_VERSION,
            mlgen_version_floor=lambda: __version__,
        )
        environment.filters.update(
            pyrepr=repr,
        )


def scaffold_plugin(name: str, destination: Path | None, data: dict[str, Any]) -> Path:
    """Render a new plugin package for backend ``name`` into ``destination``."""
    problem = _validate_backend_name(name)
    if problem:
        raise MlgenError(f"NAME: {problem}")
    target = (destination or Path(f"mlgen-{name.replace('_', '-')}")).absolute()
    check_destination(target)
    return generate(target, SCAFFOLD_TEMPLATE, {"plugin_name": name, **data}, defaults=True)
