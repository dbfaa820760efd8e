"""``execution_log.txt``: a run's events as one line each."""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Iterable, Iterator
from typing import Any

from multi_task_orchestrator.engine.reports.text import iso
from multi_task_orchestrator.engine.state import EventRecord
from multi_task_orchestrator.engine.store import EventRow

_LOG_LEVEL_NAMES = {"warning": "WARN"}


def render_log(events: Iterable[EventRecord]) -> str:
    """``execution_log.txt``: one line per event in ``seq`` order, without a trailing newline::

        2026-11-24T09:15:02.123Z INFO  [extract_site_a] started: attempt 1 attempt=1
        2026-11-24T09:15:04.456Z ERROR [extract_b] failed: Connection timeout error_class=network
        2026-11-24T09:15:05.000Z INFO  [orchestration] finished: run failed

    The level is upper-cased and padded to 5 (``warning`` shows as ``WARN``); events without a
    task show ``[orchestration]``. Newlines in the message become ``\\n``. Each ``data`` item
    follows as `` key=value``: strings as they are unless empty or holding spaces or quotes
    (then JSON-quoted), everything else as compact JSON.
    """
    return "\n".join(log_lines(events))


def log_lines(events: Iterable[EventRecord]) -> list[str]:
    return [
        _line(e.ts, e.level, e.task_id, e.kind, e.message, e.data) for e in sorted(events, key=_seq)
    ]


def log_lines_of_rows(rows: Iterable[EventRow]) -> Iterator[str]:
    """``log_lines`` of events read as plain rows (``Store.event_row_pages_here``), in their order:
    what the end of a run writes, without an ``EventRecord`` per event."""
    for _, ts, task_id, kind, level, message, data in rows:
        yield _line(ts, level, task_id, kind, message, json.loads(data) if data else None)


_seq = operator.attrgetter("seq")


def _line(
    ts: float,
    level: str,
    task_id: str | None,
    kind: str,
    message: str,
    data: dict[str, Any] | None,
) -> str:
    if "\n" in message or "\r" in message:
        message = message.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    line = f"{iso(ts)} {_log_level(level)} [{task_id or 'orchestration'}] {kind}: {message}"
    if data:
        line += "".join(f" {key}={_log_value(value)}" for key, value in data.items())
    return line


@functools.lru_cache(maxsize=64)
def _log_level(level: str) -> str:
    """The level as the log shows it: upper-cased (``warning`` as ``WARN``), padded to 5."""
    return f"{_LOG_LEVEL_NAMES.get(level.lower(), level.upper()):<5}"


# What json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str) uses.
_LOG_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def _log_value(value: Any) -> str:
    # split() cuts at exactly the characters str.isspace() calls whitespace, and gives [value]
    # only for a value that is not empty and has none.
    if isinstance(value, str) and '"' not in value and value.split(None, 1) == [value]:
        return value
    return _LOG_ENCODER.encode(value)
