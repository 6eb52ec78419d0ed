"""The service configured by environment variables, as a container runs it.

:func:`app_from_env` reads what is not given explicitly:

========================== ========================================================
``MODEL_PATH``             the exported (control) model (default: the caller's)
``MODEL_VERSION``          the version reported (default: from the file's SHA-256)
``MAX_BATCH_SIZE``         the most instances a batch may hold (default 256)
``MAX_BODY_BYTES``         the largest request body (default 1 MiB)
``AB_*``                   an A/B experiment (:func:`.experiment.experiment_from_env`)
``ONLINE_DRIFT``           online drift gauges, on unless ``0``/``false``/``off``/``no``
``ONLINE_DRIFT_WINDOW``    rows per block of the drift window (default 10,000)
``REFERENCE_PROFILE_PATH`` the training profile (default: ``reference_profile.json``
                           next to the model)
``MLGEN_TEST_FAULTS``      TEST-ONLY injected latency and errors (:mod:`.faults`);
                           unset (the default, and in every deployment): none
========================== ========================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from mlgen_runtime.schema import FeatureSchema
from mlgen_runtime.serving.app import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_BODY_BYTES, create_app
from mlgen_runtime.serving.experiment import Experiment, experiment_from_env
from mlgen_runtime.serving.faults import faults_from_env
from mlgen_runtime.serving.model import Loader, ModelFile
from mlgen_runtime.serving.online_drift import DEFAULT_WINDOW_ROWS

REFERENCE_PROFILE_FILENAME = "reference_profile.json"
_FALSE = frozenset({"0", "false", "off", "no"})
_TRUE = frozenset({"", "1", "true", "on", "yes"})


def positive_int_from_env(name: str, default: int, environ: Mapping[str, str] | None = None) -> int:
    """``$name`` as a positive integer, ``default`` when unset or empty.

    Raises:
        ValueError: the value is not a positive integer.
    """
    text = (os.environ if environ is None else environ).get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{name} must be a positive integer, got {text!r}")
    return int(text)


def flag_from_env(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """``$name`` as a switch: on when unset, empty, ``1``, ``true``, ``on`` or ``yes``;
    off for ``0``, ``false``, ``off`` or ``no`` (any case).

    Raises:
        ValueError: any other value.
    """
    text = (os.environ if environ is None else environ).get(name, "").strip().lower()
    if text in _FALSE:
        return False
    if text in _TRUE:
        return True
    raise ValueError(f"{name} must be 1/0 (true/false, on/off), got {text!r}")


def path_from_env(name: str, default: Path, environ: Mapping[str, str] | None = None) -> Path:
    """``$name`` as an absolute path (``~`` expanded), else ``default``."""
    text = (os.environ if environ is None else environ).get(name, "").strip()
    return Path(text).expanduser().resolve() if text else Path(default)


def app_from_env(
    *,
    schema: FeatureSchema,
    load_model: Loader,
    default_model_path: Path,
    model_path: Path | None = None,
    max_batch_size: int | None = None,
    max_body_bytes: int | None = None,
    experiment: Experiment | None = None,
    online_drift: bool | None = None,
    reference_profile: Path | None = None,
    drift_window_rows: int | None = None,
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> FastAPI:
    """:func:`~mlgen_runtime.serving.app.create_app` with every setting not given read
    from the environment (see the module docstring).

    Args:
        schema: the model's features.
        load_model: opens the exported model (the repository's ``modeling.load_exported``).
        default_model_path: the model when ``model_path`` and ``MODEL_PATH`` are unset.
        model_path, max_batch_size, max_body_bytes, experiment, drift_window_rows: as
            for ``create_app``; ``None`` reads the environment.
        online_drift: on or off; ``None`` reads ``ONLINE_DRIFT``.
        reference_profile: the training profile; ``None`` reads
            ``REFERENCE_PROFILE_PATH``, else the file next to the model.
        environ: the variables (default ``os.environ``).
        **options: passed on to ``create_app`` (title, version, decision_threshold...).

    Raises:
        ValueError: a variable has an invalid value.
    """
    env = os.environ if environ is None else environ
    path = (
        Path(model_path)
        if model_path is not None
        else path_from_env("MODEL_PATH", default_model_path, env)
    )
    drift_on = online_drift if online_drift is not None else flag_from_env("ONLINE_DRIFT", env)
    profile = None
    if drift_on:
        profile = (
            Path(reference_profile)
            if reference_profile is not None
            else path_from_env(
                "REFERENCE_PROFILE_PATH", path.parent / REFERENCE_PROFILE_FILENAME, env
            )
        )
    return create_app(
        schema=schema,
        model=ModelFile(path, load_model, env.get("MODEL_VERSION", "").strip() or None),
        max_batch_size=(
            max_batch_size
            if max_batch_size is not None
            else positive_int_from_env("MAX_BATCH_SIZE", DEFAULT_MAX_BATCH_SIZE, env)
        ),
        max_body_bytes=(
            max_body_bytes
            if max_body_bytes is not None
            else positive_int_from_env("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, env)
        ),
        experiment=experiment if experiment is not None else experiment_from_env(env),
        reference_profile=profile,
        drift_window_rows=(
            drift_window_rows
            if drift_window_rows is not None
            else positive_int_from_env("ONLINE_DRIFT_WINDOW", DEFAULT_WINDOW_ROWS, env)
        ),
        faults=faults_from_env(env),
        **options,
    )
