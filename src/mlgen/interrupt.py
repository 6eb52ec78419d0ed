"""SIGINT and SIGTERM as one clean stop, for ``mlgen update`` and its fleet workers.

Python turns SIGINT into :class:`KeyboardInterrupt` but lets SIGTERM kill the process on
the spot, mid-write. Inside :func:`raising_on_signals` both raise :class:`Interrupted`
(once: a second signal while the first is being handled is ignored), so the update in
progress can roll back before the process ends. :func:`flagging_on_signals` only records
the signal, for a loop that stops at its next turn (the fleet's scheduler).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_INTERRUPTED = 130
"""The exit status of a command stopped by Ctrl-C (128 + SIGINT), for SIGTERM too."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; a BaseException so ``except Exception`` lets it through."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class SignalState:
    """Which signal arrived first (``None``: none yet)."""

    received: int | None = None
    armed: bool = True

    def disarm(self) -> None:
        """Stop raising: the work that could be rolled back is over."""
        self.armed = False


@contextmanager
def _handlers(handler: signal.Handlers | object) -> Iterator[None]:
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for signum in SIGNALS:
        signal.signal(signum, handler)  # type: ignore[arg-type]
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextmanager
def raising_on_signals() -> Iterator[SignalState]:
    """Within the block, the first SIGINT/SIGTERM raises :class:`Interrupted`."""
    state = SignalState()

    def handler(signum: int, frame: FrameType | None) -> None:
        if state.received is None:
            state.received = signum
            if state.armed:
                raise Interrupted(signum)

    with _handlers(handler):
        yield state


@contextmanager
def flagging_on_signals() -> Iterator[SignalState]:
    """Within the block, SIGINT/SIGTERM only set ``state.received``."""
    state = SignalState()

    def handler(signum: int, frame: FrameType | None) -> None:
        if state.received is None:
            state.received = signum

    with _handlers(handler):
        yield state
