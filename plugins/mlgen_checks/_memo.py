"""Work that several checks of one run need, done once: built overlays, the checkov scan.

Checks run in parallel threads; the first to ask computes, the others wait for its
answer. The key includes a digest of the files the work reads, so a repository changed
between two runs in one process (tests do that) is computed afresh.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from mlgen.check_cache import RepoFiles

T = TypeVar("T")
_KEEP = 8
_futures: OrderedDict[tuple[str, ...], Future[Any]] = OrderedDict()
_lock = threading.Lock()


def files_digest(repo: Path, patterns: tuple[str, ...] = ()) -> str:
    """A digest of the paths and contents of the repository files ``patterns`` match."""
    files = RepoFiles(repo)
    hasher = hashlib.sha256()
    for path in files.matching(patterns):
        hasher.update(path.encode() + b"\0" + files.digest(path).encode() + b"\0")
    return hasher.hexdigest()


def once(key: tuple[str, ...], compute: Callable[[], T]) -> T:
    """``compute()``, or the value (or exception) of the call already made for ``key``."""
    with _lock:
        future = _futures.get(key)
        owner = future is None
        if future is None:
            future = _futures[key] = Future()
            while len(_futures) > _KEEP:
                _futures.popitem(last=False)
    if owner:
        try:
            future.set_result(compute())
        except BaseException as error:
            future.set_exception(error)
    result: T = future.result()
    return result
