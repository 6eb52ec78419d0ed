"""mlgen: a production-ready repository for every ML model.

The public plugin API is re-exported here: ``hookimpl`` to mark hook implementations,
and the data classes a plugin builds (:class:`Backend`, :class:`ContainerSpec`, ...).
"""

from __future__ import annotations

from importlib import metadata

from mlgen.backend import (
    Backend,
    ContainerSpec,
    ContractTimeouts,
    EnvVar,
    MetricQueries,
    Port,
    Probe,
    Resources,
    Volume,
)
from mlgen.checks import Check, CheckResult
from mlgen.contributions import FileContribution
from mlgen.hookspecs import PLUGIN_API_VERSION, hookimpl

try:
    __version__ = metadata.version("mlgen")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "PLUGIN_API_VERSION",
    "Backend",
    "Check",
    "CheckResult",
    "ContainerSpec",
    "ContractTimeouts",
    "EnvVar",
    "FileContribution",
    "MetricQueries",
    "Port",
    "Probe",
    "Resources",
    "Volume",
    "__version__",
    "hookimpl",
]
