"""``mlgen plugin new``: scaffold a backend plugin package from the copier template
``mlgen/plugin_template`` (kept in this repository, shipped with mlgen).

The scaffold's backend files start as a copy of the reference backend's (FastAPI +
ONNX Runtime), read from the installed ``mlgen_fastapi`` package by the Jinja extension
below, so a new plugin always starts from the current reference, never a stale copy.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment
from jinja2.ext import Extension

from mlgen import __version__, hookspecs
from mlgen.answers import validation_message
from mlgen.backend import BACKEND_NAME, Backend
from mlgen.contributions import walk_files
from mlgen.errors import MlgenError
from mlgen.generate import check_destination, generate

REFERENCE_PACKAGE = "mlgen_fastapi"
REFERENCE_DIR = "files"
SCAFFOLD_TEMPLATE = Path(__file__).resolve().parent / "plugin_template"


def _reference_files() -> list[str]:
    root = resources.files(REFERENCE_PACKAGE).joinpath(REFERENCE_DIR)
    return [f"{REFERENCE_DIR}/{relative}" for relative, _ in walk_files(root)]


def _reference_file(path: str) -> str:
    return resources.files(REFERENCE_PACKAGE).joinpath(path).read_text(encoding="utf-8")


def _reference_backend() -> Backend:
    from mlgen_fastapi import BACKEND

    backend: Backend = BACKEND
    return backend


def _validate_backend_name(name: str) -> str:
    if not BACKEND_NAME.fullmatch(str(name)):
        return (
            f"{name!r} is not a backend name; use lower-case letters, digits, '-' or '_', "
            "starting with a letter, at most 31 characters"
        )
    return ""


class ReferenceBackendExtension(Extension):
    """Globals for the scaffold template: the reference backend's files and data."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.globals.update(
            reference_backend_files=_reference_files,
            reference_backend_file=_reference_file,
            reference_backend=_reference_backend,
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
