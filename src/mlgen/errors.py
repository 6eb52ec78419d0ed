"""The one exception family the CLI turns into an ``Error: ...`` line."""

from __future__ import annotations


class MlgenError(Exception):
    """A user-facing error: its message is one line that names the problem and the fix."""


class PluginError(MlgenError):
    """A plugin is unusable: duplicate backend, misspelled hook, incompatible API."""


class AnswerError(MlgenError):
    """A copier answer is invalid."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class UnknownBackendError(MlgenError):
    """The requested serving backend is not installed."""


class DestinationError(MlgenError):
    """The destination of a new repository cannot be used."""
