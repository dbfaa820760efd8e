"""The ``schedules`` table: recurring runs of a stored document, and the compare-and-swap
updates that make each fire happen once however many servers share the database."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiosqlite

from multi_task_orchestrator.engine.store.writer import Writer

COLUMNS = (
    "id, name, document, vars, cron, every, timezone, overlap, catch_up, created_at, paused, "
    "next_fire_at, queued_at, last_fire_at, last_run_id, fires, skips, last_error"
)


@dataclass(slots=True)
class ScheduleRow:
    """One schedule as stored; times are epoch seconds."""

    id: str
    name: str
    document: str  # the document's text (YAML or JSON), as it was given
    vars: dict[str, Any]
    cron: str | None
    every: float | None
    timezone: str
    overlap: str
    catch_up: str
    created_at: float
    paused: bool = False
    next_fire_at: float | None = None
    queued_at: float | None = None  # overlap "queue": the due time of the fire waiting
    last_fire_at: float | None = None
    last_run_id: str | None = None
    fires: int = 0
    skips: int = 0
    last_error: str | None = None


def _row(values: Any) -> ScheduleRow:
    (id_, name, document, vars_, cron, every, zone, overlap, catch_up, created_at, paused) = values[
        :11
    ]
    return ScheduleRow(
        id_,
        name,
        document,
        json.loads(vars_) if vars_ else {},
        cron,
        every,
        zone,
        overlap,
        catch_up,
        created_at,
        bool(paused),
        *values[11:],
    )


class Schedules:
    """Reads and single-statement writes of the ``schedules`` table."""

    def __init__(self, writer: Writer, db: aiosqlite.Connection) -> None:
        self._writer = writer
        self._db = db

    async def insert_schedule(self, row: ScheduleRow) -> None:
        await self._writer.write(
            f"INSERT INTO schedules ({COLUMNS}) VALUES ({','.join('?' * 18)})",
            (
                row.id,
                row.name,
                row.document,
                json.dumps(row.vars) if row.vars else None,
                row.cron,
                row.every,
                row.timezone,
                row.overlap,
                row.catch_up,
                row.created_at,
                int(row.paused),
                row.next_fire_at,
                row.queued_at,
                row.last_fire_at,
                row.last_run_id,
                row.fires,
                row.skips,
                row.last_error,
            ),
        )

    async def get_schedule(self, schedule_id: str) -> ScheduleRow | None:
        rows = await self._select("WHERE id = ?", (schedule_id,))
        return rows[0] if rows else None

    async def list_schedules(self) -> list[ScheduleRow]:
        return await self._select("ORDER BY created_at", ())

    async def due_schedules(self, now: float) -> list[ScheduleRow]:
        """Unpaused schedules whose next fire is due, or that hold a queued fire."""
        return await self._select(
            "WHERE paused = 0 AND (next_fire_at <= ? OR queued_at IS NOT NULL) "
            "ORDER BY next_fire_at",
            (now,),
        )

    async def next_fire(self) -> float | None:
        """The earliest next fire of any unpaused schedule."""
        cursor = await self._db.execute("SELECT MIN(next_fire_at) FROM schedules WHERE paused = 0")
        row = await cursor.fetchone()
        return row[0] if row else None

    async def matching_schedule_ids(self, prefix: str, limit: int = 10) -> list[str]:
        # substr, not LIKE: SQLite refuses a LIKE pattern over 50,000 bytes
        cursor = await self._db.execute(
            "SELECT id FROM schedules WHERE substr(id, 1, length(?1)) = ?1 COLLATE NOCASE "
            "ORDER BY created_at LIMIT ?2",
            (prefix, limit),
        )
        return [row[0] for row in await cursor.fetchall()]

    async def delete_schedule(self, schedule_id: str) -> bool:
        return await self._writer.write("DELETE FROM schedules WHERE id = ?", (schedule_id,)) > 0

    async def set_schedule_paused(
        self, schedule_id: str, paused: bool, next_fire_at: float | None
    ) -> bool:
        """Pause, or resume from ``next_fire_at`` (a fire queued before the pause is dropped)."""
        changed = await self._writer.write(
            "UPDATE schedules SET paused = ?, next_fire_at = ?, queued_at = NULL WHERE id = ?",
            (int(paused), next_fire_at, schedule_id),
        )
        return changed > 0

    async def claim_fire(self, schedule_id: str, due: float, next_fire_at: float) -> bool:
        """Move the schedule's next fire from ``due`` to ``next_fire_at``; True for the one
        caller (of any process) that did, which alone handles the fire at ``due``."""
        changed = await self._writer.write(
            "UPDATE schedules SET next_fire_at = ? WHERE id = ? AND next_fire_at = ? "
            "AND paused = 0",
            (next_fire_at, schedule_id, due),
        )
        return changed > 0

    async def queue_fire(self, schedule_id: str, due: float) -> bool:
        """Keep the fire at ``due`` waiting for the previous run; False if one already waits."""
        changed = await self._writer.write(
            "UPDATE schedules SET queued_at = ? WHERE id = ? AND queued_at IS NULL",
            (due, schedule_id),
        )
        return changed > 0

    async def take_queued(self, schedule_id: str, queued_at: float) -> bool:
        """Take the waiting fire to start it; True for the one caller that did."""
        changed = await self._writer.write(
            "UPDATE schedules SET queued_at = NULL WHERE id = ? AND queued_at = ?",
            (schedule_id, queued_at),
        )
        return changed > 0

    async def record_fire(self, schedule_id: str, fired_at: float, run_id: str) -> None:
        await self._writer.write(
            "UPDATE schedules SET last_fire_at = ?, last_run_id = ?, fires = fires + 1, "
            "last_error = NULL WHERE id = ?",
            (fired_at, run_id, schedule_id),
        )

    async def record_skip(self, schedule_id: str) -> None:
        await self._writer.write(
            "UPDATE schedules SET skips = skips + 1 WHERE id = ?", (schedule_id,)
        )

    async def record_schedule_error(self, schedule_id: str, error: str) -> None:
        await self._writer.write(
            "UPDATE schedules SET last_error = ? WHERE id = ?", (error, schedule_id)
        )

    async def _select(self, clause: str, params: tuple[Any, ...]) -> list[ScheduleRow]:
        cursor = await self._db.execute(f"SELECT {COLUMNS} FROM schedules {clause}", params)
        return [_row(values) for values in await cursor.fetchall()]
