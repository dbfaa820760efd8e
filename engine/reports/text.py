"""How the reports write times, durations and free text: the pieces the status display, the
summary, the results and the log share."""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime

from multi_task_orchestrator.engine.state import TaskSnapshot


def format_duration(seconds: float) -> str:
    """A duration for people: ``"2.3s"`` under a minute, ``"1m 05s"`` under an hour, else
    ``"1h 02m"``. Negative or non-finite input shows as ``"0.0s"``."""
    if not math.isfinite(seconds) or seconds < 0:
        seconds = 0.0
    if seconds < 59.95:  # anything higher would print as "60.0s"
        return f"{seconds:.1f}s"
    total = round(seconds)
    if total < 3600:
        minutes, secs = divmod(total, 60)
        return f"{minutes}m {secs:02d}s"
    hours, rest = divmod(total, 3600)
    return f"{hours}h {rest // 60:02d}m"


def one_line(text: str, limit: int) -> str:
    """``text`` with every run of whitespace (newlines included) made one space, cut to
    ``limit`` characters with an ellipsis, at a space when one is near the end."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 3 // 4 else cut) + "…"


def _without_prefix(text: str, prefix: str) -> str:
    """``text`` without a leading ``"<prefix>:"`` (the display already says it)."""
    stripped = text.strip()
    if stripped.lower().startswith(prefix + ":"):
        return stripped[len(prefix) + 1 :].strip()
    return stripped


def iso(timestamp: float | None) -> str | None:
    """An epoch time as ISO 8601 UTC with milliseconds: ``"2026-11-24T09:15:02.123Z"``.

    The one form of a timestamp users see: the run files, the event log and the MCP answers
    (``list_orchestrations``) all use it."""
    if timestamp is None:
        return None
    # Split as datetime.fromtimestamp does (microseconds rounded half to even), so the text is
    # the same as datetime's isoformat, whose milliseconds cut the microseconds down.
    fraction, whole = math.modf(timestamp)
    second, micros = int(whole), round(fraction * 1e6)
    if not 0 <= micros < 1_000_000:
        carry = micros // 1_000_000
        second, micros = second + carry, micros - carry * 1_000_000
    return _iso_second(second) + _MILLISECONDS[micros // 1000]


_MILLISECONDS = [f".{millis:03d}Z" for millis in range(1000)]


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    """A whole epoch second as ``"2026-11-24T09:15:02"`` (UTC); a run's events share few."""
    return datetime.fromtimestamp(second, tz=UTC).isoformat()[:19]


def seconds_between(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, end - start), 3)


def task_error(task: TaskSnapshot, limit: int) -> str:
    if task.error and task.error.strip():
        return one_line(task.error, limit)
    return task.error_class or ""


def task_reason(task: TaskSnapshot, state_word: str, limit: int) -> str:
    if not task.reason:
        return ""
    return one_line(_without_prefix(task.reason, state_word), limit)
