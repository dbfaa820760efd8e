"""The server's log: stderr (stdout belongs to the protocol) and ``$ORCHESTRATOR_HOME/server.log``.

Every record passes ``REDACTION`` on its way to a handler, so no log line can carry a secret
value, whichever library wrote it; the server's lifespan points it at the engine's redactor.
The file is 0600. httpx and httpcore log each request URL at INFO, which would write a secret
sent in a query string or a path: they log warnings only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the model with the runners' fields is built when first used
    from multi_task_orchestrator.server.settings import Settings

QUIET_LOGGERS = ("httpx", "httpcore")


class RedactingFilter(logging.Filter):
    """Masks secret values in a record's message and traceback before any handler sees it."""

    def __init__(self) -> None:
        super().__init__()
        self._redact: Callable[[str], str] | None = None

    def use(self, redact: Callable[[str], str] | None) -> None:
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self._redact
        if redact is None:
            return True
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


REDACTION = RedactingFilter()


def configure_logging(settings: Settings, level: int = logging.INFO) -> None:
    """Log to stderr and to the server log file (created 0600), every line redacted."""
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(settings.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    os.chmod(settings.log_path, 0o600)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [
        logging.StreamHandler(),
        logging.FileHandler(settings.log_path),
    ]
    root = logging.getLogger()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(REDACTION)
        root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
