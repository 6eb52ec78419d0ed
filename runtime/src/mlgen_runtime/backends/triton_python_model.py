"""LOCAL ONLY: Triton python-backend model that runs ``model.onnx`` with ONNX Runtime.

Not imported by mlgen-runtime: :func:`mlgen_runtime.backends.triton_config.
build_local_repository` copies this file to ``<repository>/<model>/1/model.py`` (see
:data:`~mlgen_runtime.backends.triton_config.PYTHON_MODEL_SOURCE`). The deployed image does
NOT use it: Triton's own ``onnxruntime`` backend serves ``model.onnx`` there. It exists
because the tritonserver that ``nvidia-pytriton`` bundles (the one that runs on a CPU-only
machine without Docker) only has the python backend. Both read the same graph with the
same runtime, so they answer the same.

It runs inside Triton's python-backend stub, not in this package: it imports only
numpy, onnxruntime and ``triton_python_backend_utils`` (provided by the stub), and reads
the input and output names from the model configuration: the one ``features`` matrix,
or, for a model exported with preprocessing, one input per feature (``TYPE_FP32``, NaN
for a null, or ``TYPE_STRING`` for a string category), each fed to the graph input of
its name.

The stub's numpy conversion (``as_numpy`` and ``pb_utils.Tensor(name, array)``) predates
numpy 2: with numpy 2 it computes wrong sizes, so numeric tensors then cross the stub
boundary through DLPack (``np.from_dlpack`` and ``pb_utils.Tensor.from_dlpack``), and it
cannot read string tensors at all (it builds their byte buffer with a stride of 0 and
fails in ``deserialize_bytes_tensor`` before :meth:`TritonPythonModel.execute` runs;
DLPack has no strings). With numpy 1 (the side environment
:func:`mlgen_runtime.backends.triton_local.prepare_model_environment` builds) every
tensor goes through ``as_numpy``, and a ``TYPE_STRING``
input arrives as an object array of ``bytes``, decoded as UTF-8 for ONNX Runtime. The
deployed image's ``onnxruntime`` backend reads them itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

MODEL_FILENAME = "model.onnx"
NUMPY_2 = int(np.__version__.split(".", 1)[0]) >= 2
"""Whether the stub's numpy conversion is unusable (numeric tensors then go by DLPack)."""


def _ignore_consumed_capsules(hook: Any) -> Any:
    """An unraisable hook that drops numpy's complaint about a DLPack capsule the stub
    consumed (it renames capsules "used_dlpack"; numpy expects "used_dltensor")."""

    def unraisable(info: Any) -> None:
        if isinstance(info.exc_value, ValueError) and "PyCapsule" in str(info.exc_value):
            return
        hook(info)

    return unraisable


def _read(tensor: Any, string: bool) -> np.ndarray:
    """An input tensor as ONNX Runtime takes it: ``float32``, or ``str`` objects."""
    if not string:
        values = np.from_dlpack(tensor) if NUMPY_2 else tensor.as_numpy()
        return np.ascontiguousarray(values, dtype=np.float32)
    values = tensor.as_numpy()
    decoded = [
        v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values.reshape(-1)
    ]
    return np.array(decoded, dtype=object).reshape(values.shape)


def _tensor(name: str, values: np.ndarray) -> Any:
    """An output tensor, built the way the stub handles with this numpy."""
    return pb_utils.Tensor.from_dlpack(name, values) if NUMPY_2 else pb_utils.Tensor(name, values)


class TritonPythonModel:
    """One ONNX Runtime session per model instance."""

    def initialize(self, args: dict[str, str]) -> None:
        """Open the ONNX model next to this file (Triton calls this once per instance)."""
        sys.unraisablehook = _ignore_consumed_capsules(sys.unraisablehook)
        config = json.loads(args["model_config"])
        self.inputs = [
            (tensor["name"], tensor["data_type"] == "TYPE_STRING") for tensor in config["input"]
        ]
        self.output_names = [tensor["name"] for tensor in config["output"]]
        path = Path(args["model_repository"]) / args["model_version"] / MODEL_FILENAME
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def execute(self, requests: list[Any]) -> list[Any]:
        """Answer each request (a dynamic batch is a list of requests)."""
        responses = []
        for request in requests:
            try:
                feeds = {
                    name: _read(pb_utils.get_input_tensor_by_name(request, name), string)
                    for name, string in self.inputs
                }
                results = self.session.run(self.output_names, feeds)
                tensors = [
                    _tensor(name, np.ascontiguousarray(result))
                    for name, result in zip(self.output_names, results, strict=True)
                ]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as error:  # one bad request must not fail the batch
                responses.append(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"{type(error).__name__}: {error}")
                    )
                )
        return responses

    def finalize(self) -> None:
        """Release the session (Triton calls this when the model unloads)."""
        self.session = None
