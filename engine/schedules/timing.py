"""When a schedule fires: cron expressions read in the schedule's time zone, or an interval
anchored at the schedule's creation.

Cron times come from cronsim, which follows Debian cron across daylight-saving changes: a
job at a fixed time that falls in the hour skipped in spring runs once at the first valid time
after it, and one in the hour repeated in autumn runs once, not twice; a job whose hour is a
wildcard runs in both copies of the repeated hour.
"""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
CRON_FORM = (
    "write five fields, minute hour day-of-month month day-of-week, e.g. '0 9 * * 1-5' "
    f"(09:00 on weekdays) or '*/15 * * * *', or one of {', '.join(NICKNAMES)}"
)


def _expanded(expression: str) -> str:
    text = " ".join(expression.split())
    return NICKNAMES.get(text.lower(), text)


def check_cron(expression: str) -> str:
    """The expression, tidied, if cron understands it; else ValueError saying how to write it."""
    text = " ".join(expression.split())
    try:
        CronSim(_expanded(text), datetime(2000, 1, 1))
    except CronSimError as exc:
        reason = str(exc).rstrip(".").lower() or "not understood"
        raise ValueError(f"bad cron expression '{text}' ({reason}); {CRON_FORM}") from None
    return text


def explain_cron(expression: str) -> str:
    """The expression in words ("At 09:00 on Monday through Friday")."""
    return CronSim(_expanded(expression), datetime(2000, 1, 1)).explain()


def explain_every(seconds: float) -> str:
    """An interval in words, in its largest whole unit: "every 15m", "every 90s", "every 1d"."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"every {seconds / size:g}{unit}"
    return f"every {seconds:g}s"


def fire_times(
    *,
    cron: str | None,
    every: float | None,
    zone: str,
    created_at: float,
    after: float,
    count: int = 1,
) -> list[float]:
    """The next ``count`` fire times strictly after ``after`` (epoch seconds)."""
    if every is not None:
        first = math.floor((after - created_at) / every) + 1
        return [created_at + (first + step) * every for step in range(count)]
    assert cron is not None
    times = CronSim(_expanded(cron), datetime.fromtimestamp(after, ZoneInfo(zone)))
    return [next(times).timestamp() for _ in range(count)]


def next_fire(
    *, cron: str | None, every: float | None, zone: str, created_at: float, after: float
) -> float:
    return fire_times(cron=cron, every=every, zone=zone, created_at=created_at, after=after)[0]
