"""Serving: the FastAPI app factory every HTTP backend builds its service with.

Needs the ``serving`` extra (FastAPI, pydantic, prometheus-client, uvicorn).

* :func:`create_app` / :func:`app_from_env`: the service, from a feature schema and a
  model file (:class:`ModelFile`), explicitly or from environment variables;
* :mod:`.models`: the request and response models derived from the schema;
* :mod:`.metrics`: the Prometheus metrics (names are a contract with alert rules,
  dashboards and canary gates);
* :mod:`.experiment`: A/B variant routing (standard-library assignment only);
* :mod:`.online_drift`: live feature histograms and their PSI;
* :mod:`.fast_path`: body limit, request metrics and the predict fast path.
"""

from mlgen_runtime.serving.app import create_app
from mlgen_runtime.serving.environment import app_from_env
from mlgen_runtime.serving.experiment import (
    CONTROL,
    NO_VARIANT,
    TREATMENT,
    Experiment,
    experiment_from_env,
)
from mlgen_runtime.serving.model import Loader, ModelFile, Predict, file_version

__all__ = [
    "CONTROL",
    "NO_VARIANT",
    "TREATMENT",
    "Experiment",
    "Loader",
    "ModelFile",
    "Predict",
    "app_from_env",
    "create_app",
    "experiment_from_env",
    "file_version",
]
