"""Exceptions a runner raises to fail an attempt with a class the retry policy understands."""

from __future__ import annotations


class TaskError(Exception):
    """An attempt failed.

    ``error_class`` is matched against a task's ``retry.on`` (``timeout``, ``network``,
    ``http_429``, ``http_5xx``, ``session_expired``, ...); ``retry_after`` asks for a specific delay
    before the next attempt (e.g. from a ``Retry-After`` header).
    """

    def __init__(
        self, message: str, error_class: str = "error", *, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_class = error_class
        self.retry_after = retry_after


class ConfigError(TaskError):
    """A task's configuration cannot be used (caught at validation when possible)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "config")
