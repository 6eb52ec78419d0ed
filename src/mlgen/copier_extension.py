"""The Jinja extension that connects copier.yml and the template to the mlgen plugins.

copier loads it through ``_jinja_extensions``, so plain ``copier copy --trust`` and
``mlgen new`` render the same repository. It adds these globals:

``mlgen_backend_names()``       installed backend names (the choices of ``serving_backend``)
``mlgen_backend(name)``         a backend as plain data (dependencies, container, ...)
``mlgen_validate(field, v)``    "" or the one-line error for an answer
``mlgen_contributed_files()``   rendered paths of the files plugins contribute
``mlgen_render_contributed(p)`` the rendered body of contributed file ``p``
``mlgen_framework_names()``     the choices of ``model_framework`` (:mod:`mlgen.frameworks`)
``mlgen_default_framework(b)``  the ``model_framework`` default for backend ``b``
``mlgen_framework_problem(b, f)`` "" or the one-line refusal of an unsupported pair
``mlgen_export_format()``       the format the repository exports (backend x framework)
``mlgen_modeling_format()``     the export format whose template modeling module the
                                 repository gets ("" when the backend contributes its own)
``mlgen_serving_requirements()`` what the serving image installs: the runtime pin with
                                 the backend's ``serving_runtime_extras``, then its
                                 ``serving_dependencies``
``mlgen_plugin_manifest()``     JSON: which plugins (and versions) and which runtime
                                 release went into the generation, who wrote which file
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

from jinja2 import Environment, pass_context
from jinja2.ext import Extension
from jinja2.runtime import Context

from mlgen import __version__, frameworks, hookspecs
from mlgen.answers import validation_message
from mlgen.backend import EXPORT_FORMATS
from mlgen.contributions import FileContribution
from mlgen.errors import PluginError
from mlgen.plugins import get_registry

_ANSWER_TYPES = (str, int, float, bool)


def answers_from_context(context: Context) -> dict[str, Any]:
    """The copier answers visible in a render context (plain values, no ``_`` names)."""
    return {
        name: value
        for name, value in context.get_all().items()
        if not name.startswith("_") and isinstance(value, _ANSWER_TYPES)
    }


def _safe_relative_path(path: str, origin: str) -> str:
    normal = posixpath.normpath(path)
    if path.startswith("/") or normal.startswith("..") or normal in ("", "."):
        raise PluginError(
            f"{origin} contributes {path!r}, which is not a relative path inside the repository"
        )
    return normal


def rendered_contributions(context: Context) -> dict[str, FileContribution]:
    """The contributed files for the answers in ``context``, keyed by rendered path."""
    answers = answers_from_context(context)
    rendered: dict[str, FileContribution] = {}
    for path, contribution in get_registry().contributed_files(answers).items():
        target = context.environment.from_string(path).render(context.get_all())
        rendered[_safe_relative_path(target, contribution.origin)] = contribution
    return rendered


@pass_context
def _contributed_files(context: Context) -> list[str]:
    return sorted(rendered_contributions(context))


@pass_context
def _render_contributed(context: Context, path: str) -> str:
    return render_contribution(context, path, rendered_contributions(context)[path])


def render_contribution(context: Context, path: str, contribution: FileContribution) -> str:
    """The body of one contributed file, rendered with every answer in ``context``."""
    try:
        template = context.environment.from_string(contribution.source)
        return template.render(context.get_all())
    except Exception as error:  # a plugin's template: name the plugin, whatever it raised
        message = " ".join(str(error).split())
        raise PluginError(
            f"{contribution.origin} failed to render {path!r}: {type(error).__name__}: {message}"
        ) from error


@pass_context
def _plugin_manifest(context: Context) -> str:
    answers = answers_from_context(context)
    registry = get_registry()
    backend = registry.get_backend(str(answers.get("serving_backend", "")))
    contributions = rendered_contributions(context)
    origins = {contribution.origin for contribution in contributions.values()}
    used = {
        name: {"distribution": info.distribution, "version": info.version}
        for name, info in registry.plugins.items()
        if name == backend.plugin.name or info.label in origins
    }
    manifest = {
        "mlgen_version": __version__,
        "plugin_api_version": hookspecs.PLUGIN_API_VERSION,
        "backend": {
            "name": backend.backend.name,
            "plugin": backend.plugin.name,
            "distribution": backend.plugin.distribution,
            "version": backend.plugin.version,
        },
        # Every plugin whose backend or files went into this generation, with its version,
        # and the runtime release the pin names: what `mlgen update` reports as from/to.
        "plugins": used,
        "runtime": {
            "distribution": "mlgen-runtime",
            "version": str(context.get("mlgen_runtime_version", "")),
        },
        # Which plugin wrote which file. Their pristine bodies (the base of the next
        # update) are in the generation record, .mlgen/generated.json.gz.
        "files": {path: {"origin": contributions[path].origin} for path in sorted(contributions)},
    }
    return json.dumps(manifest, indent=2, sort_keys=True)


@pass_context
def _export_format(context: Context) -> str:
    """The format the repository exports: the one of the backend's served formats that the
    ``model_framework`` answer exports (the backend's main format for a format of its
    own, or an answers file that predates the question)."""
    answers = answers_from_context(context)
    backend = get_registry().get_backend(str(answers.get("serving_backend", ""))).backend
    framework = str(answers.get("model_framework", frameworks.default_framework(backend)))
    return frameworks.export_format(backend, framework) or backend.export_format


@pass_context
def _modeling_format(context: Context) -> str:
    """The export format of the template's modeling module to render, or "" for none.

    The template has one modeling module per format in :data:`EXPORT_FORMATS`; a backend
    that contributes ``src/<package>/modeling.py`` itself keeps its own (and must, for
    any other format).
    """
    answers = answers_from_context(context)
    registered = get_registry().get_backend(str(answers.get("serving_backend", "")))
    modeling = f"src/{answers.get('package_name', '')}/modeling.py"
    if modeling in rendered_contributions(context):
        return ""
    export_format = _export_format(context)
    if export_format not in EXPORT_FORMATS:
        raise PluginError(
            f"{registered.plugin.label}: backend {registered.backend.name!r} exports "
            f"{export_format!r}, for which the template has no modeling module (it has "
            f"{', '.join(EXPORT_FORMATS)}); contribute src/{{{{ package_name }}}}/modeling.py.jinja"
        )
    return export_format


@pass_context
def _serving_requirements(context: Context) -> list[str]:
    """The selected backend's serving-image requirements (:meth:`Backend.serving_requirements`)."""
    backend = get_registry().get_backend(str(context.get("serving_backend", ""))).backend
    return backend.serving_requirements(str(context.get("mlgen_runtime_version", "")))


def _backend_data(name: str) -> dict[str, Any]:
    return get_registry().get_backend(name).backend.as_template_data()


def _default_framework(backend: str) -> str:
    registry = get_registry()
    if backend not in registry.backends:  # copier asks before validating the backend
        return frameworks.DEFAULT_FRAMEWORK
    return frameworks.default_framework(registry.backends[backend].backend)


def _framework_problem(backend: str, framework: str) -> str:
    registry = get_registry()
    backends = {name: registered.backend for name, registered in registry.backends.items()}
    return frameworks.pair_problem(backend, framework, backends)


def quoted(value: Any) -> str:
    """A double-quoted string literal valid in TOML, Python, JSON and YAML alike.

    (Jinja's ``tojson`` writes non-BMP characters as surrogate pairs, which TOML rejects.)
    """
    return json.dumps(str(value), ensure_ascii=False)


class MlgenExtension(Extension):
    """Adds the ``mlgen_*`` globals and the ``quoted`` filter to copier's Jinja environment."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["quoted"] = quoted
        environment.globals.update(
            mlgen_backend_names=lambda: get_registry().backend_names(),
            mlgen_backend=_backend_data,
            mlgen_validate=validation_message,
            mlgen_contributed_files=_contributed_files,
            mlgen_render_contributed=_render_contributed,
            mlgen_framework_names=frameworks.framework_names,
            mlgen_default_framework=_default_framework,
            mlgen_framework_problem=_framework_problem,
            mlgen_export_format=_export_format,
            mlgen_modeling_format=_modeling_format,
            mlgen_plugin_manifest=_plugin_manifest,
            mlgen_serving_requirements=_serving_requirements,
        )
