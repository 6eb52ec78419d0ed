"""Load mlgen plugins and hold what they registered.

Loading order: the built-in backends (entry points of the ``mlgen`` distribution
itself), then every other entry point in the ``mlgen`` group, sorted by name. Built-ins
are ordinary entry points: they get no shortcut that a third-party plugin lacks.

* A plugin that fails to import (or to register) becomes a :class:`PluginLoadWarning`
  naming its distribution and the error; the other plugins keep working.
* ``pm.check_pending()`` runs after each plugin, so a misspelled hook fails loudly.
* ``MLGEN_DISABLE_PLUGINS=name,...`` blocks plugins by entry-point name.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from typing import Any

import pluggy

from mlgen import hookspecs
from mlgen.backend import Backend
from mlgen.contributions import FileContribution, contributions_from_package
from mlgen.errors import PluginError, UnknownBackendError

ENTRY_POINT_GROUP = "mlgen"
DISABLE_ENV = "MLGEN_DISABLE_PLUGINS"
BUILTIN_DISTRIBUTION = "mlgen"


class PluginLoadWarning(UserWarning):
    """A plugin could not be loaded; mlgen goes on without it."""


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin comes from."""

    name: str
    distribution: str
    version: str
    api_version: int

    @property
    def label(self) -> str:
        return f"plugin {self.name!r} ({self.distribution} {self.version})"


@dataclass(frozen=True)
class RegisteredBackend:
    """A backend together with the plugin that registered it."""

    backend: Backend
    plugin: PluginInfo


@dataclass
class PluginRegistry:
    """What the loaded plugins registered."""

    manager: pluggy.PluginManager
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    backends: dict[str, RegisteredBackend] = field(default_factory=dict)
    load_warnings: list[str] = field(default_factory=list)

    def backend_names(self) -> list[str]:
        """Names of the installed backends, sorted."""
        return sorted(self.backends)

    def get_backend(self, name: str) -> RegisteredBackend:
        """Return the backend called ``name`` or raise a did-you-mean error."""
        try:
            return self.backends[name]
        except KeyError:
            raise UnknownBackendError(unknown_backend_message(name, self.backend_names())) from None

    def contributed_files(self, answers: Mapping[str, Any]) -> dict[str, FileContribution]:
        """Every file the plugins contribute for ``answers``, keyed by unrendered path.

        The selected backend's template folder comes first, then ``mlgen_contribute_files``.
        """
        registered = self.get_backend(str(answers.get("serving_backend", "")))
        backend = registered.backend
        found = contributions_from_package(
            backend.templates_package, backend.templates_dir, registered.plugin.label
        )
        labels = {name: info.label for name, info in self.plugins.items()}
        for plugin_name, results in call_each(
            self.manager, "mlgen_contribute_files", labels=labels, answers=answers
        ):
            origin = self.plugins[plugin_name].label
            for contribution in results or ():
                found.append(FileContribution(contribution.path, contribution.source, origin))
        by_path: dict[str, FileContribution] = {}
        for contribution in found:
            earlier = by_path.get(contribution.path)
            if earlier is not None:
                raise PluginError(
                    f"{contribution.path!r} is contributed by both {earlier.origin}"
                    f" and {contribution.origin}; disable one with {DISABLE_ENV}=NAME"
                )
            by_path[contribution.path] = contribution
        return by_path


def call_each(
    manager: pluggy.PluginManager,
    hook_name: str,
    only: str | None = None,
    labels: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> list[tuple[str, Any]]:
    """Call one hook's implementations one by one (optionally only plugin ``only``).

    Unlike ``manager.hook.<name>(...)`` this keeps each result next to the plugin that
    returned it, so errors and contributions can name their plugin.
    """
    results = []
    for implementation in reversed(getattr(manager.hook, hook_name).get_hookimpls()):
        if only is not None and implementation.plugin_name != only:
            continue
        arguments = [kwargs[name] for name in implementation.argnames]
        try:
            result = implementation.function(*arguments)
        except Exception as error:
            if labels is None:
                raise
            label = labels.get(implementation.plugin_name, repr(implementation.plugin_name))
            raise PluginError(
                f"{label} failed in {hook_name}: {type(error).__name__}: "
                f"{' '.join(str(error).split())}"
            ) from error
        results.append((implementation.plugin_name, result))
    return results


def unknown_backend_message(name: str, installed: list[str]) -> str:
    """One line: the unknown backend, a did-you-mean, the installed names."""
    close = difflib.get_close_matches(name, installed, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listing = ", ".join(installed) or "none"
    return f"serving_backend: unknown backend {name!r}.{hint} Installed backends: {listing}"


def _disabled_names() -> set[str]:
    return {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()}


def _ordered(entry_points: Iterable[metadata.EntryPoint]) -> list[metadata.EntryPoint]:
    def key(entry_point: metadata.EntryPoint) -> tuple[bool, str]:
        dist = entry_point.dist.name if entry_point.dist else ""
        return (dist != BUILTIN_DISTRIBUTION, entry_point.name)

    unique: dict[str, metadata.EntryPoint] = {}
    for entry_point in sorted(entry_points, key=key):
        unique.setdefault(entry_point.name, entry_point)
    return list(unique.values())


def _plugin_info(entry_point: metadata.EntryPoint, module: object) -> PluginInfo:
    dist = entry_point.dist
    api_version = getattr(module, "MLGEN_PLUGIN_API", hookspecs.PLUGIN_API_VERSION)
    return PluginInfo(
        name=entry_point.name,
        distribution=dist.name if dist else "unknown",
        version=dist.version if dist else "unknown",
        api_version=api_version if isinstance(api_version, int) else -1,
    )


def _warn(registry: PluginRegistry, message: str) -> None:
    registry.load_warnings.append(message)
    warnings.warn(message, PluginLoadWarning, stacklevel=3)


def load_plugins(
    entry_points: Iterable[metadata.EntryPoint] | None = None,
    extra: Iterable[tuple[str, object]] = (),
) -> PluginRegistry:
    """Build a plugin manager from the ``mlgen`` entry points and collect what they register.

    ``extra`` adds ``(name, module)`` plugins after the entry points, exactly as if they
    were installed (plugin authors' tests use it through ``mlgen.testing.registry_with``).
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    registry = PluginRegistry(manager)
    if entry_points is None:
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    disabled = _disabled_names()
    for entry_point in _ordered(entry_points):
        if entry_point.name in disabled:
            continue
        dist = entry_point.dist.name if entry_point.dist else "unknown"
        try:
            module = entry_point.load()
        except Exception as error:  # any import failure of a third-party plugin
            _warn(
                registry,
                f"plugin {entry_point.name!r} from distribution {dist!r} failed to "
                f"load ({type(error).__name__}: {error}); uninstall it or set "
                f"{DISABLE_ENV}={entry_point.name}",
            )
            continue
        info = _plugin_info(entry_point, module)
        if info.api_version != hookspecs.PLUGIN_API_VERSION:
            _warn(
                registry,
                f"{info.label} was built for mlgen plugin API {info.api_version}, "
                f"this mlgen provides API {hookspecs.PLUGIN_API_VERSION}; upgrade the plugin "
                f"or set {DISABLE_ENV}={info.name}",
            )
            continue
        _register(registry, module, info)
    for name, module in extra:
        api_version = getattr(module, "MLGEN_PLUGIN_API", hookspecs.PLUGIN_API_VERSION)
        _register(registry, module, PluginInfo(name, "(not installed)", "0", api_version))
    return registry


def _register(registry: PluginRegistry, module: object, info: PluginInfo) -> None:
    manager = registry.manager
    manager.register(module, name=info.name)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        manager.unregister(name=info.name)
        raise PluginError(
            f"{info.label}: {error}; fix the hook name or set {DISABLE_ENV}={info.name}"
        ) from error
    registry.plugins[info.name] = info
    collected: list[Backend] = []
    try:
        call_each(manager, "mlgen_register_backends", only=info.name, register=collected.append)
    except Exception as error:
        manager.unregister(name=info.name)
        del registry.plugins[info.name]
        _warn(
            registry,
            f"{info.label} failed while registering backends "
            f"({type(error).__name__}: {error}); set {DISABLE_ENV}={info.name} to silence",
        )
        return
    for backend in collected:
        if not isinstance(backend, Backend):
            raise PluginError(f"{info.label} registered {backend!r}, which is not an mlgen.Backend")
        existing = registry.backends.get(backend.name)
        if existing is not None:
            raise PluginError(
                f"backend {backend.name!r} is registered by both {existing.plugin.label} and "
                f"{info.label}; uninstall one or set {DISABLE_ENV}=<plugin name>"
            )
        registry.backends[backend.name] = RegisteredBackend(backend, info)


@cache
def get_registry() -> PluginRegistry:
    """The process-wide registry of installed plugins (loaded on first use)."""
    return load_plugins()
