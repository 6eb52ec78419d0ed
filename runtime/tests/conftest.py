"""Runtime tests: the light ones run in mlgen's own environment (fast tier); those under
``integration/`` need the heavy extras (MLflow, Feast, ONNX Runtime) and run in an
environment with every extra, built by mlgen's slow test ``tests/test_runtime.py``."""

from __future__ import annotations

import os

INTEGRATION_ENV = "MLGEN_RUNTIME_INTEGRATION"

collect_ignore = [] if os.environ.get(INTEGRATION_ENV) == "1" else ["integration"]
