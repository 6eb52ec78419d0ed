"""The MLflow pyfunc wrapper of an exported model ("models from code").

:func:`mlgen_runtime.registry.log_and_register` logs this file as the model's code, with
the exported artifact and a model configuration naming the repository's loader and the
input columns. MLflow runs it when ``mlflow.pyfunc.load_model("models:/<name>@champion")``
loads the model: the artifact is served by the backend's own runtime, so the registry
holds exactly what ships.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext


class ExportedModel(PythonModel):  # type: ignore[misc]
    """Predicts with the exported artifact from a frame with one column per feature."""

    def load_context(self, context: PythonModelContext) -> None:
        """Import the loader named in the model configuration and load the artifact."""
        module, _, function = str(context.model_config["loader"]).partition(":")
        load = getattr(importlib.import_module(module), function)
        self._features = [str(name) for name in context.model_config["features"]]
        self._predict = load(Path(context.artifacts["exported"]))

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> np.ndarray:
        """The loader's predictions for the frame's feature columns, in schema order: as
        the float32 matrix when they are all numbers, else (string categories: a model
        exported with preprocessing) as the raw columns."""
        frame = model_input[self._features]
        if all(kind in "biuf" for kind in (dtype.kind for dtype in frame.dtypes)):
            return np.asarray(self._predict(frame.to_numpy(dtype=np.float32)))
        return np.asarray(self._predict(frame))


mlflow.models.set_model(ExportedModel())
