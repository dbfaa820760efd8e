"""The schedules as a caller sees them: add (the document checked first), list with the next
fire times and the last run, pause, resume, delete; ids or unique prefixes of them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from secrets import token_hex
from typing import TYPE_CHECKING, Any

from multi_task_orchestrator.engine.facade_errors import UnknownOrchestration, shown_id
from multi_task_orchestrator.engine.issues import Issue
from multi_task_orchestrator.engine.schedules.models import ScheduleSpec, UnknownSchedule
from multi_task_orchestrator.engine.schedules.timing import fire_times, next_fire
from multi_task_orchestrator.engine.store import ScheduleRow

if TYPE_CHECKING:
    from multi_task_orchestrator.engine.engine import Engine

SHOWN_FIRES = 3  # next fire times a listing shows


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule with what it will do next and what it did last."""

    row: ScheduleRow
    next_fires: list[float]  # empty while paused
    last_run_status: str | None
    warnings: list[Issue] = field(default_factory=list)  # the document's, when it was added

    @property
    def id(self) -> str:
        return self.row.id


def make_schedule_id() -> str:
    return f"sch-{token_hex(4)}"


class ScheduleBook:
    """Adds and changes schedules in the engine's state database (any process may: a running
    server picks them up)."""

    def __init__(self, engine: Engine, *, now: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._store = engine.store
        self._now = now

    async def add(self, spec: ScheduleSpec, document: str | Mapping[str, Any]) -> Schedule:
        """Store a schedule of ``document`` (YAML or JSON text, or a mapping) run with the
        spec's vars; DocumentError listing every problem when the document is not valid."""
        text = document if isinstance(document, str) else json.dumps(document)
        validation = await self._engine.validate_in_thread(
            text, extra_vars=spec.vars, require_runners=True
        )
        orchestration = validation.raise_for_errors()
        created_at = self._now()
        row = ScheduleRow(
            id=make_schedule_id(),
            name=spec.name or orchestration.name,
            document=text,
            vars=spec.vars,
            cron=spec.cron,
            every=spec.every,
            timezone=spec.timezone,
            overlap=spec.overlap,
            catch_up=spec.catch_up,
            created_at=created_at,
            next_fire_at=_next(spec.cron, spec.every, spec.timezone, created_at, created_at),
        )
        await self._store.insert_schedule(row)
        return replace(await self._view(row), warnings=validation.warnings)

    async def get(self, schedule_id: str) -> Schedule:
        return await self._view(await self._row(schedule_id))

    async def list(self) -> list[Schedule]:
        return [await self._view(row) for row in await self._store.list_schedules()]

    async def delete(self, schedule_id: str) -> Schedule:
        """Delete a schedule (its runs stay); the schedule as it was."""
        row = await self._row(schedule_id)
        if not await self._store.delete_schedule(row.id):
            raise UnknownSchedule(f"schedule {row.id} was deleted meanwhile")
        view = await self._view(row)
        return Schedule(view.row, [], view.last_run_status)  # it will not fire again

    async def pause(self, schedule_id: str) -> Schedule:
        """Stop firing (a fire waiting to start is dropped) until ``resume``."""
        row = await self._row(schedule_id)
        await self._store.set_schedule_paused(row.id, True, row.next_fire_at)
        return await self.get(row.id)

    async def resume(self, schedule_id: str) -> Schedule:
        """Fire again from the next fire time after now; fires missed while paused are not
        made up."""
        row = await self._row(schedule_id)
        if row.paused:
            now = self._now()
            upcoming = _next(row.cron, row.every, row.timezone, row.created_at, now)
            await self._store.set_schedule_paused(row.id, False, upcoming)
        return await self.get(row.id)

    async def resolve(self, schedule_id: str) -> str:
        """The full id for an id or a unique prefix of one."""
        text = schedule_id.strip()
        if text and await self._store.get_schedule(text) is not None:
            return text
        matches = await self._store.matching_schedule_ids(text) if text else []
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UnknownSchedule(
                f"'{text}' matches several schedules ({', '.join(matches)}); give more of the id"
            )
        known = [row.id for row in await self._store.list_schedules()]
        listing = f"schedules: {', '.join(known[:20])}" if known else "there are no schedules"
        raise UnknownSchedule(
            f"no schedule '{shown_id(text)}'; {listing} (list_schedules or 'orchestrator schedule "
            "list')"
        )

    async def _row(self, schedule_id: str) -> ScheduleRow:
        row = await self._store.get_schedule(await self.resolve(schedule_id))
        if row is None:
            raise UnknownSchedule(f"schedule {schedule_id} was deleted meanwhile")
        return row

    async def _view(self, row: ScheduleRow) -> Schedule:
        upcoming: list[float] = []
        if not row.paused and row.next_fire_at is not None:
            later = fire_times(
                cron=row.cron,
                every=row.every,
                zone=row.timezone,
                created_at=row.created_at,
                after=row.next_fire_at,
                count=SHOWN_FIRES - 1,
            )
            upcoming = [row.next_fire_at, *later]
        status = None
        if row.last_run_id is not None:
            try:
                status = (await self._engine.run_status(row.last_run_id)).value
            except UnknownOrchestration:
                status = None
        return Schedule(row, upcoming, status)


def _next(cron: str | None, every: float | None, zone: str, created: float, after: float) -> float:
    return next_fire(cron=cron, every=every, zone=zone, created_at=created, after=after)
