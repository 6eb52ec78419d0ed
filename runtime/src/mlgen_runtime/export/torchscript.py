"""PyTorch modules as TorchScript files with their schema inside (TorchServe's format).

:func:`save` compiles a module with ``torch.jit.script`` and writes it with a JSON
document as a TorchScript "extra file", so the serving side (``torch.jit.load`` in a
TorchServe handler) reads the model and what it expects without the repository's code;
:func:`load` reads both back; :func:`one_thread` pins torch to one intra-op thread.

Usage (a repository's ``modeling.py``)::

    from mlgen_runtime.export import torchscript

    torchscript.save(network, out_dir / "model.pt", schema={"features": [...]})
    module, schema = torchscript.load(out_dir / "model.pt")

torch is not an extra of the runtime: it comes from the repository's own dependencies
(its version is the backend's choice) and is imported inside each function.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlgen_runtime.export import replaced_atomically

SCHEMA_FILE = "mlgen.json"
"""The TorchScript extra file that holds the schema document."""


@contextmanager
def quiet_torchscript() -> Iterator[None]:
    """Silence torch's DeprecationWarning for TorchScript.

    TorchServe 0.12 loads TorchScript (``torch.jit.load``), so it stays the format of the
    backends that serve with it; the warning would only be noise in every training run.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit", category=DeprecationWarning)
        yield


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block.

    The fastest for a small model, and the same result on every machine (the thread
    count changes the order of floating-point reductions).
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def save(module: Any, path: Path, schema: Mapping[str, Any]) -> Path:
    """Script ``module`` (in eval mode) and write it, with ``schema``, to ``path``.

    The schema is stored as the extra file :data:`SCHEMA_FILE` (sorted JSON); the file
    replaces ``path`` atomically. Returns ``path``.
    """
    import torch

    path = Path(path)
    extra_files = {SCHEMA_FILE: json.dumps(dict(schema), sort_keys=True)}
    with quiet_torchscript(), replaced_atomically(path) as partial:
        scripted = torch.jit.script(module.eval())
        torch.jit.save(scripted, str(partial), _extra_files=extra_files)
    return path


def load(path: Path) -> tuple[Any, dict[str, Any]]:
    """The scripted module (CPU, eval mode) and the schema stored with it (``{}`` if none)."""
    import torch

    extra_files = {SCHEMA_FILE: ""}
    with quiet_torchscript():
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra_files)
    module.eval()
    stored = extra_files[SCHEMA_FILE]
    return module, (json.loads(stored) if stored else {})


def read_schema(path: Path) -> dict[str, Any]:
    """The schema stored in a TorchScript file (``{}`` if it has none)."""
    return load(path)[1]


def check_features(schema: Mapping[str, Any], feature_names: list[str] | tuple[str, ...]) -> None:
    """Refuse a model whose schema records other features than ``feature_names``.

    Raises:
        ValueError: naming the recorded and the expected features ("retrain").
    """
    names = [feature["name"] for feature in schema.get("features", [])]
    if names != list(feature_names):
        raise ValueError(
            f"model was trained on features {names or '(none recorded)'}, "
            f"this code expects {list(feature_names)}: retrain"
        )
