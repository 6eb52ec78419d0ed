"""Export helpers for the model formats mlgen backends serve, one module per format.

* :mod:`mlgen_runtime.export.onnx`: scikit-learn to ONNX (skl2onnx), checked and loaded
  with ONNX Runtime (extra ``onnx``);
* :mod:`mlgen_runtime.export.torchscript`: save and reload a TorchScript module with its
  schema as an extra file (torch comes from the repository's own dependencies);
* :mod:`mlgen_runtime.export.savedmodel`: TensorFlow SavedModel folders, the
  ``serving_default`` signature and TF Serving's version layout (TensorFlow comes from the
  repository's own dependencies).

The format modules import their framework inside the functions that need it, so
importing a module costs nothing, and a serving client can use the constants alone.
This module holds what every format shares: writing an artifact so that a reader never
sees half of it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["replaced_atomically"]


@contextmanager
def replaced_atomically(target: Path) -> Iterator[Path]:
    """Yield a scratch path beside ``target``; when the block succeeds, swap it in.

    Write the artifact (a file or a folder) to the yielded path. On success it replaces
    ``target`` with one rename (a folder: the old one is moved aside first, then
    removed), so a server watching ``target`` never loads a partial artifact. On error
    the scratch path is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    previous = target.with_name(f".{target.name}.previous")
    for leftover in (partial, previous):
        _remove(leftover)
    try:
        yield partial
    except BaseException:
        _remove(partial)
        raise
    if partial.is_dir() and target.exists():
        os.replace(target, previous)
    os.replace(partial, target)
    _remove(previous)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
