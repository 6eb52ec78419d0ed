"""The Open Inference Protocol's tensor datatypes (standard library and numpy only).

Shared by the service's v2 routes (:mod:`mlgen_runtime.serving.v2_tensors`) and the
client (:mod:`mlgen_runtime.inference_client`), which must not import the serving extra.
"""

from __future__ import annotations

from typing import Any

import numpy as np

NUMBER_TYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
"""The protocol's fixed-size datatypes and their little-endian numpy types."""
