"""The served model: a file, the function that loads it, and its state in the service."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlgen_runtime.artifacts import model_version

Predict = Callable[[Any], np.ndarray]
"""A loaded model: the ``float32`` input matrix ``[n, features]`` in (or, for a model
exported with preprocessing, the raw values by feature name), the positive-class
probabilities ``[n]`` out."""
Loader = Callable[[Path], Predict]
"""Opens an exported model (the repository's ``modeling.load_exported``)."""

logger = logging.getLogger("uvicorn.error")  # uvicorn prints this logger's lines


def file_version(path: Path) -> str:
    """A short, content-derived version of an exported model: ``sha256-<12 hex>``.

    The same as :func:`mlgen_runtime.artifacts.model_version` (a directory artifact hashes
    its files' relative paths and contents, in sorted order), so the version a service
    reports matches the digest training recorded in ``metrics.json``.
    """
    return model_version(path)


@dataclass(frozen=True)
class ModelFile:
    """Where a model is and how to open it.

    Attributes:
        path: the exported model (a file or a directory).
        load: opens it; it is called when the service starts, then once more on an
            example row so that a broken model fails then, not on the first request.
        version: the version the service reports; default :func:`file_version`.
    """

    path: Path
    load: Loader
    version: str | None = None


@dataclass
class ServedModel:
    """One model of the service once started: loaded, or why it is not."""

    source: ModelFile
    variant: str
    predict: Predict | None = None
    version: str | None = None
    error: str | None = None

    @property
    def ready(self) -> bool:
        """Whether predictions can be served."""
        return self.predict is not None

    def load(self, example: np.ndarray, name: str) -> None:
        """Open the model and predict ``example`` once; on failure, record and log why."""
        path = Path(self.source.path)
        self.predict, self.version, self.error = None, None, None
        if not path.exists():
            self.error = f"model file not found: {path}"
        else:
            try:
                predict = self.source.load(path)
                predict(example)  # fail now, not on the first request
            except Exception as error:  # any failure means "not ready", not a crash
                reason = str(error).strip().splitlines()
                detail = reason[0] if reason else "no detail"
                self.error = f"cannot load model {path}: {type(error).__name__}: {detail}"
            else:
                self.predict = predict
                self.version = self.source.version or file_version(path)
        if self.error is not None:
            logger.error("%s %s model NOT ready: %s", name, self.variant, self.error)
        else:
            logger.info("%s %s model %s loaded from %s", name, self.variant, self.version, path)
