"""Helpers for specific model servers, one module per server (standard library only unless
a module says otherwise).

* :mod:`mlgen_runtime.backends.triton_local`: LOCAL ONLY, run the tritonserver of the
  ``nvidia-pytriton`` wheel on loopback for smoke tests and serving tests.
"""
