"""mlgen-runtime: the machinery every mlgen model repository shares.

A generated repository keeps only what is its own (feature schema, data loading, model
code, configuration); it imports everything else from here and gets fixes by bumping its
``mlgen-runtime~=X.Y.0`` pin. Each job is one module:

* :mod:`mlgen_runtime.schema`: feature schema objects and the input matrix
* :mod:`mlgen_runtime.export`: write, check and load ONNX, TorchScript and SavedModel artifacts
* :mod:`mlgen_runtime.backends`: helpers for specific model servers (Triton, TorchServe)
* :mod:`mlgen_runtime.process`: start a local server, wait until ready, always stop it
* :mod:`mlgen_runtime.smoke`: the pieces of every backend's end-to-end smoke test
* :mod:`mlgen_runtime.training`: the gate and export checks around training;
  :mod:`mlgen_runtime.artifacts`: model digests, versions and ``metrics.json``
* :mod:`mlgen_runtime.testing`: helpers for a repository's own suite (extra ``test``)
* :mod:`mlgen_runtime.drift`: the reference profile, KS / chi-square / PSI drift checks
  and the ``python -m mlgen_runtime.drift`` command
* :mod:`mlgen_runtime.ab`: assignment (:mod:`~mlgen_runtime.ab.assignment`, for serving)
  and statistics (:mod:`~mlgen_runtime.ab.stats`, the ``stats`` extra)
* :mod:`mlgen_runtime.serving`: the FastAPI app factory of HTTP backends (extra ``serving``)
* :mod:`mlgen_runtime.gate`: the SLO / canary gate (``python -m mlgen_runtime.gate``)
* :mod:`mlgen_runtime.registry`: MLflow champion / challenger promotion (extra ``registry``)
* :mod:`mlgen_runtime.feature_store`: Feast helpers (extra ``feast``)
"""

__version__ = "0.1.0"
