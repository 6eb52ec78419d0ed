"""Progress of long work: live lines on a terminal, one plain line per step in CI logs.

One :class:`LiveStatus` per process (:func:`current`) is shared by everything that
reports progress (``mlgen check``, environment builds, fleet updates), so their lines
do not overwrite each other. On a terminal every running item has a line of its own
with its elapsed time, redrawn in place; finished items leave one permanent line.
Elsewhere (a pipe, a CI log, ``TERM=dumb``, ``$CI`` set) nothing is redrawn: each
finished item prints one line, and steps that ask for it announce their start.

Usage::

    from mlgen import live_status

    with live_status.step("building environment 1a2b: installing 17 requirements"):
        ...  # the slow part

    status = live_status.current()
    status.begin("repo-a", "updating repo-a")
    status.end("repo-a", "updated repo-a")
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def is_interactive(stream: TextIO) -> bool:
    """Whether lines on ``stream`` may be redrawn (a terminal, not a CI log)."""
    if os.environ.get("CI") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class LiveStatus:
    """Running items drawn at the bottom of ``err``; permanent lines written to ``out``.

    Args:
        out: where finished items' lines go (``None``: ``err``).
        err: the stream of the live lines.
        interactive: redraw in place (default: :func:`is_interactive` of ``err``).
        tick: seconds between redraws of the elapsed times.
    """

    def __init__(
        self,
        out: TextIO | None = None,
        err: TextIO | None = None,
        interactive: bool | None = None,
        tick: float = 0.25,
    ) -> None:
        self.err = err or sys.stderr
        self.out = out or self.err
        self.interactive = is_interactive(self.err) if interactive is None else interactive
        self._tick = tick
        self._running: dict[str, tuple[str, float]] = {}
        self._drawn = 0
        self._frame = 0
        self._lock = threading.RLock()
        self._ticker: threading.Thread | None = None

    def begin(self, key: str, label: str, announce: bool = False) -> None:
        """An item started; ``announce`` also prints ``label`` in a non-interactive log."""
        with self._lock:
            self._running[key] = (label, time.monotonic())
            if self.interactive:
                self._redraw()
                self._start_ticker()
            elif announce:
                self._print(self.err, label)

    def end(self, key: str, line: str | None = None) -> None:
        """An item finished; ``line`` (if any) stays on the screen or in the log."""
        with self._lock:
            self._running.pop(key, None)
            if self.interactive:
                self._redraw(line)
            elif line is not None:
                self._print(self.out, line)

    def note(self, line: str) -> None:
        """A permanent line, printed above the running items."""
        with self._lock:
            if self.interactive:
                self._redraw(line)
            else:
                self._print(self.out, line)

    def _print(self, stream: TextIO, line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    def _redraw(self, permanent: str | None = None) -> None:
        if self._drawn:
            self.err.write(f"\x1b[{self._drawn}F\x1b[J")  # up to the first live line, clear
            self.err.flush()
        if permanent is not None:
            if self.out is not self.err:
                self.err.flush()
            self._print(self.out, permanent)
        width = shutil.get_terminal_size((100, 20)).columns - 1
        spinner = _SPINNER[self._frame % len(_SPINNER)]
        now = time.monotonic()
        lines = [
            f"{spinner} {label} ({now - started:.0f}s)"[:width]
            for label, started in self._running.values()
        ]
        for line in lines:
            self.err.write(line + "\n")
        self.err.flush()
        self._drawn = len(lines)

    def _start_ticker(self) -> None:
        if self._ticker is not None and self._ticker.is_alive():
            return

        def tick() -> None:
            while True:
                time.sleep(self._tick)
                with self._lock:
                    if not self._running:
                        self._ticker = None
                        return
                    self._frame += 1
                    self._redraw()

        self._ticker = threading.Thread(target=tick, name="mlgen-live-status", daemon=True)
        self._ticker.start()


_current: LiveStatus | None = None
_current_lock = threading.Lock()


def current() -> LiveStatus:
    """The process's shared status display (on stderr unless :func:`use` set another)."""
    global _current
    with _current_lock:
        if _current is None:
            _current = LiveStatus()
        return _current


def use(status: LiveStatus) -> LiveStatus:
    """Make ``status`` the shared display (``mlgen check`` does, to own stdout)."""
    global _current
    with _current_lock:
        _current = status
    return status


@contextmanager
def step(label: str) -> Iterator[None]:
    """Show ``label`` while the block runs; one line when it is done or announced in CI."""
    status = current()
    key = f"step-{id(object())}-{time.monotonic_ns()}"
    started = time.monotonic()
    status.begin(key, label, announce=True)
    try:
        yield
    except BaseException:
        status.end(key, f"{label}: failed after {time.monotonic() - started:.1f}s")
        raise
    status.end(
        key, f"{label}: done in {time.monotonic() - started:.1f}s" if status.interactive else None
    )
