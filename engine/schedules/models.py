"""What a schedule is made of, checked: ``ScheduleSpec`` (cron or interval, time zone, overlap
and catch-up policies, vars, name) and the errors a caller can meet."""

from __future__ import annotations

import functools
import zoneinfo
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from multi_task_orchestrator.engine.document.units import Duration
from multi_task_orchestrator.engine.facade_errors import RequestError, shown_id
from multi_task_orchestrator.engine.issues import did_you_mean
from multi_task_orchestrator.engine.schedules.timing import check_cron

MIN_EVERY = 1.0  # seconds: the shortest interval a schedule may have

Overlap = Literal["skip", "queue", "allow"]
CatchUp = Literal["skip", "run_once"]


class ScheduleError(RequestError):
    """A schedule that cannot be made or changed as asked; the message says how to fix it."""


class UnknownSchedule(ScheduleError):
    """No schedule has this id (or unique prefix)."""


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_zone(name: str) -> str:
    """``name`` if it is an IANA time zone this machine knows; else a ValueError with a hint."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: 'Europe', a folder
        names = _zone_names()
        same_case = [zone for zone in names if zone.lower() == name.lower()]
        hint = f"did you mean '{same_case[0]}'?" if same_case else did_you_mean(name[:100], names)
        raise ValueError(
            f"unknown time zone '{shown_id(name)}'; "
            + (hint or "use an IANA name such as 'UTC', 'Europe/Berlin' or 'America/New_York'")
        ) from None
    return name


class ScheduleSpec(BaseModel):
    """When and how a stored document runs again and again."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    cron: str | None = Field(
        default=None, description="five fields (minute hour day month weekday), or @daily etc."
    )
    every: Duration | None = Field(default=None, description="an interval such as 15m, 1h, 30s")
    timezone: str = Field(default="UTC", description="the IANA zone cron times are read in")
    overlap: Overlap = "skip"
    catch_up: CatchUp = "skip"
    vars: dict[str, Any] = Field(default_factory=dict)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @field_validator("every")
    @classmethod
    def _every(cls, value: float | None) -> float | None:
        if value is not None and value < MIN_EVERY:
            raise ValueError(f"must be at least {MIN_EVERY:g} s, got {value:g} s")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return check_zone(value)

    @model_validator(mode="after")
    def _one_timing(self) -> ScheduleSpec:
        if (self.cron is None) == (self.every is None):
            both = self.cron is not None
            raise ValueError(
                ("give either cron or every, not both" if both else "give cron or every")
                + " (cron: '0 9 * * 1-5' for 09:00 on weekdays; every: '15m' for every "
                "15 minutes)"
            )
        return self

    @classmethod
    def parse(cls, values: dict[str, Any]) -> ScheduleSpec:
        """The spec for ``values``; ScheduleError listing every problem (and a did-you-mean
        for a misspelt field) otherwise."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ScheduleError(describe(exc, sorted(cls.model_fields))) from None


def describe(error: ValidationError, fields: list[str]) -> str:
    """Every problem of a spec on a line of its own, without echoing the input."""
    lines = []
    for problem in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            hint = did_you_mean(where, fields)
            message = f"unknown field (fields: {', '.join(fields)})" + (f"; {hint}" if hint else "")
        elif problem["type"] == "literal_error":
            message = message.replace("Input should be", "must be")
        elif hint := (problem.get("ctx") or {}).get("hint"):  # a duration's: how to write one
            message = f"{message} ({hint})"
        lines.append(f"- {where}: {message}" if where else f"- {message}")
    count = len(lines)
    return f"the schedule has {count} problem{'s' if count != 1 else ''}:\n" + "\n".join(lines)
