"""The schedule tools: schedule a document to run again and again, list, pause, resume, delete.

The schedules are stored in the state database and fired by the running server (``orchestrator
serve``); each answer shows the next fire times in UTC and in the schedule's own time zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field, Strict

from multi_task_orchestrator.engine import (
    Schedule,
    ScheduleBook,
    ScheduleSpec,
    explain_cron,
    explain_every,
    iso,
)
from multi_task_orchestrator.tools.context import tool_context
from multi_task_orchestrator.tools.errors import friendly_errors
from multi_task_orchestrator.tools.models import Problem
from multi_task_orchestrator.tools.orchestrations import SpecInput, VarsInput
from multi_task_orchestrator.tools.strict import read_only, runs_tasks, strict_tool
from multi_task_orchestrator.tools.views import problem

IdInput = Annotated[str, Field(description="the schedule id (or a unique prefix of it)")]


class FireTime(BaseModel):
    utc: str = Field(description="ISO 8601 UTC with milliseconds")
    local: str = Field(description="the same moment in the schedule's time zone, with offset")


class ScheduleInfo(BaseModel):
    """A schedule, what it does next and what it did last."""

    id: str
    name: str
    cron: str | None = None
    every_seconds: float | None = None
    when: str = Field(description="the timing in words")
    timezone: str
    overlap: str = Field(description="skip, queue or allow")
    catch_up: str = Field(description="skip or run_once")
    paused: bool
    next_fires: list[FireTime] = Field(description="the next three fire times; none while paused")
    created_at: str
    last_fire_at: str | None = None
    last_run_id: str | None = None
    last_run_status: str | None = None
    fires: int = Field(description="runs started")
    skips: int = Field(description="fires skipped (overlap) or missed (catch-up skip)")
    last_error: str | None = Field(
        default=None, description="why the last fire did not start a run, if it did not"
    )


class ScheduleAnswer(BaseModel):
    schedule: ScheduleInfo
    warnings: list[Problem] = Field(
        default_factory=list,
        description="the document's warnings, as validate_orchestration gives them",
    )
    next_step: str


class ScheduleList(BaseModel):
    schedules: list[ScheduleInfo]


def tools() -> list[Tool]:
    """The schedule tools."""
    return [
        strict_tool(
            schedule_orchestration,
            annotations=runs_tasks("Schedule an orchestration"),
        ),
        strict_tool(
            list_schedules,
            annotations=read_only("List schedules"),
        ),
        strict_tool(
            pause_schedule,
            annotations=ToolAnnotations(
                title="Pause a schedule",
                read_only_hint=False,
                destructive_hint=True,  # a fire waiting to start is dropped
                idempotent_hint=True,
                open_world_hint=False,
            ),
        ),
        strict_tool(
            resume_schedule,
            # its fires start tasks again, which may do anything a run does
            annotations=runs_tasks("Resume a schedule").model_copy(
                update={"idempotent_hint": True}
            ),
        ),
        strict_tool(
            delete_schedule,
            annotations=ToolAnnotations(
                title="Delete a schedule",
                read_only_hint=False,
                destructive_hint=True,
                idempotent_hint=False,
                open_world_hint=False,
            ),
        ),
    ]


@friendly_errors
async def schedule_orchestration(
    spec: SpecInput,
    ctx: Context,
    cron: Annotated[
        str | None,
        Field(
            description="five fields: minute hour day-of-month month day-of-week, e.g. "
            "'0 9 * * 1-5' (09:00 on weekdays), '*/15 * * * *'; or @hourly, @daily, @weekly"
        ),
    ] = None,
    every: Annotated[
        str | Annotated[float, Strict()] | None,  # strict: true is no interval of 1 s
        Field(description="an interval instead of cron: '15m', '1h', '30s' or seconds (>= 1)"),
    ] = None,
    timezone: Annotated[
        str, Field(description="IANA time zone the cron times are in, e.g. 'Europe/Berlin'")
    ] = "UTC",
    overlap: Annotated[
        Literal["skip", "queue", "allow"],
        Field(
            description="a fire while the previous run is unfinished: skip it, queue one "
            "(starts when the run ends), or allow runs side by side"
        ),
    ] = "skip",
    catch_up: Annotated[
        Literal["skip", "run_once"],
        Field(
            description="fires missed while no server ran (over 60 s late): skip them, or "
            "run once at start"
        ),
    ] = "skip",
    vars: VarsInput = None,
    name: Annotated[
        str | None, Field(description="a name for the schedule (default: the document's)")
    ] = None,
) -> ScheduleAnswer:
    """Run an orchestration document again and again: by cron expression or interval, in a
    time zone. The document is checked now (every problem listed); each fire starts a run like
    submit_orchestration, with source "schedule:ID". Schedules are fired by the running server.

    Example: schedule_orchestration(spec="tasks: [{id: a, type: delay}]", cron="0 9 * * 1-5",
    timezone="Europe/Berlin") -> {"schedule": {"id": "sch-1a2b3c4d", "next_fires":
    [{"utc": "...Z", "local": "...+01:00"}, ...], ...}}
    """
    values: dict[str, Any] = {
        "cron": cron,
        "every": every,
        "timezone": timezone,
        "overlap": overlap,
        "catch_up": catch_up,
        "vars": vars or {},
        "name": name,
    }
    checked = ScheduleSpec.parse({key: value for key, value in values.items() if value is not None})
    added = await ScheduleBook(tool_context(ctx).engine).add(checked, spec)
    return ScheduleAnswer(
        schedule=schedule_info(added),
        warnings=[problem(issue) for issue in added.warnings],
        next_step=(
            f"list_schedules shows its fires and last run; pause_schedule(id='{added.id}') "
            f"or delete_schedule(id='{added.id}') stops it"
        ),
    )


@friendly_errors
async def list_schedules(ctx: Context) -> ScheduleList:
    """Every schedule: its timing, the next three fire times (UTC and local), paused or not,
    the last run and its status, how many fires started runs or were skipped, the last error.
    """
    listed = await ScheduleBook(tool_context(ctx).engine).list()
    return ScheduleList(schedules=[schedule_info(schedule) for schedule in listed])


@friendly_errors
async def pause_schedule(id: IdInput, ctx: Context) -> ScheduleInfo:
    """Stop a schedule firing until resume_schedule; runs already started go on."""
    return schedule_info(await ScheduleBook(tool_context(ctx).engine).pause(id))


@friendly_errors
async def resume_schedule(id: IdInput, ctx: Context) -> ScheduleInfo:
    """Let a paused schedule fire again, from its next fire time after now (fires that fell
    in the pause are not made up)."""
    return schedule_info(await ScheduleBook(tool_context(ctx).engine).resume(id))


@friendly_errors
async def delete_schedule(id: IdInput, ctx: Context) -> ScheduleInfo:
    """Delete a schedule for good; the runs it started stay. Returns it as it was."""
    return schedule_info(await ScheduleBook(tool_context(ctx).engine).delete(id))


def schedule_info(schedule: Schedule) -> ScheduleInfo:
    row = schedule.row
    zone = ZoneInfo(row.timezone)
    return ScheduleInfo(
        id=row.id,
        name=row.name,
        cron=row.cron,
        every_seconds=row.every,
        when=when(row.cron, row.every, row.timezone),
        timezone=row.timezone,
        overlap=row.overlap,
        catch_up=row.catch_up,
        paused=row.paused,
        next_fires=[
            FireTime(
                utc=iso(ts) or "",
                local=datetime.fromtimestamp(ts, zone).isoformat(timespec="seconds"),
            )
            for ts in schedule.next_fires
        ],
        created_at=iso(row.created_at) or "",
        last_fire_at=iso(row.last_fire_at),
        last_run_id=row.last_run_id,
        last_run_status=schedule.last_run_status,
        fires=row.fires,
        skips=row.skips,
        last_error=row.last_error,
    )


def when(cron: str | None, every: float | None, zone: str) -> str:
    """The timing in words: "At 09:00 on Monday through Friday (Europe/Berlin)"."""
    if cron is not None:
        return f"{explain_cron(cron)} ({zone})"
    assert every is not None
    return explain_every(every)
