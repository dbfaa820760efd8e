"""Schedules: a stored document run again and again, by cron or interval, in a time zone.

``models`` (what a schedule is, checked), ``timing`` (when it fires), ``book`` (add, list,
pause, resume, delete) and ``firing`` (the loop ``orchestrator serve`` runs). The rows live in
the state database (``store.schedules``).
"""

from multi_task_orchestrator.engine.schedules.book import Schedule, ScheduleBook
from multi_task_orchestrator.engine.schedules.firing import (
    GRACE_SECONDS,
    POLL_SECONDS,
    Fire,
    ScheduleFirer,
)
from multi_task_orchestrator.engine.schedules.models import (
    ScheduleError,
    ScheduleSpec,
    UnknownSchedule,
)
from multi_task_orchestrator.engine.schedules.timing import (
    explain_cron,
    explain_every,
    fire_times,
)

__all__ = [
    "GRACE_SECONDS",
    "POLL_SECONDS",
    "Fire",
    "Schedule",
    "ScheduleBook",
    "ScheduleError",
    "ScheduleFirer",
    "ScheduleSpec",
    "UnknownSchedule",
    "explain_cron",
    "explain_every",
    "fire_times",
]
