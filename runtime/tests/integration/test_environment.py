"""The integration environment has every extra the runtime declares."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "fastapi",
        "prometheus_client",
        "onnxruntime",
        "statsmodels",
        "mlflow",
        "feast",
        "tritonclient.grpc",
    ],
)
def test_extra_is_importable(module: str) -> None:
    importlib.import_module(module)
