"""Helpers for specific model servers, one module per server (standard library only unless
a module says otherwise).

* :mod:`mlgen_runtime.backends.torchserve`: start TorchServe, wait until the model has a
  READY worker, answer the kubelet's probes, stop the whole process group (also the
  container's main process, ``python -m mlgen_runtime.backends.torchserve``);
* :mod:`mlgen_runtime.backends.rayserve`: ``serve run`` a Serve config on loopback, see
  what Ray binds, stop every process it started (standard library and PyYAML);
* :mod:`mlgen_runtime.backends.kserve`: KServe's model server for a repository's schema
  and exported model (v1 and v2 protocols, REST and gRPC; needs ``kserve``);
* :mod:`mlgen_runtime.backends.tfserving_config`: TF Serving's ``models.config``,
  ``monitoring.config`` and ``batching.config`` read with its own schemas and checked
  (needs ``tensorflow-serving-api``);
* :mod:`mlgen_runtime.backends.tfserving_local`: LOCAL ONLY, run a
  ``tensorflow_model_server`` binary on loopback where one is installed;
* :mod:`mlgen_runtime.backends.torchserve_handler`: TorchServe's handler of a TorchScript
  model with its feature schema (needs torch and ``ts``), on
  :mod:`~mlgen_runtime.backends.torchserve_requests` (request parsing, standard library);
* :mod:`mlgen_runtime.backends.triton_local`: LOCAL ONLY, run the tritonserver of the
  ``nvidia-pytriton`` wheel on loopback for smoke tests and serving tests;
* :mod:`mlgen_runtime.backends.triton_config`: ``config.pbtxt`` validated with Triton's
  schema and against the ONNX graph, and the model-repository folders (needs
  ``tritonclient[grpc]`` and ``onnx``, which Triton repositories depend on).
"""

from __future__ import annotations

import os

DEFAULT_MAX_BATCH_SIZE = 256


def max_batch_size_from_env() -> int:
    """``$MAX_BATCH_SIZE`` as a positive integer (default 256): the most rows one request
    may hold, for every backend's own request parsing."""
    text = os.environ.get("MAX_BATCH_SIZE", "").strip()
    if not text:
        return DEFAULT_MAX_BATCH_SIZE
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"MAX_BATCH_SIZE must be a positive integer, got {text!r}")
    return int(text)
