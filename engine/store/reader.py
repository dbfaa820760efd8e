"""The store's queries: orchestrations, tasks (whole, or as a status shows them), attempts and
events, read through the aiosqlite connection (WAL lets reads run while a commit is under
way)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from multi_task_orchestrator.engine.state import EventRecord
from multi_task_orchestrator.engine.store.rows import (
    STATUS_COLUMNS,
    AttemptRow,
    EventRow,
    OrchestrationRow,
    TaskRow,
    status_row,
    task_row,
)
from multi_task_orchestrator.engine.usage import Totals

_ATTEMPTS_OF = (
    "SELECT orchestration_id, task_id, attempt, started_at, finished_at, outcome, error, "
    "error_class, queued_at, waited_for, input_tokens, output_tokens, cost_usd, model_calls, "
    "unpriced_calls, model FROM attempts WHERE orchestration_id = ? ORDER BY started_at"
)
_EVENTS_AFTER = (
    "SELECT seq, ts, task_id, kind, level, message, data FROM events "
    "WHERE orchestration_id = ? AND seq > ? ORDER BY seq LIMIT ?"
)


class Reader:
    """Reads of the state database; none of them waits for the queued writes (``flush``)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def exists(self, orchestration_id: str) -> bool:
        cursor = await self._db.execute(
            "SELECT 1 FROM orchestrations WHERE id = ?", (orchestration_id,)
        )
        return await cursor.fetchone() is not None

    async def get_orchestration(
        self, orchestration_id: str, *, with_document: bool = True
    ) -> OrchestrationRow | None:
        rows = await self._select_orchestrations(
            "WHERE id = ?", (orchestration_id,), with_document=with_document
        )
        return rows[0] if rows else None

    async def find_idempotent(self, key: str) -> OrchestrationRow | None:
        rows = await self._select_orchestrations("WHERE idempotency_key = ?", (key,))
        return rows[0] if rows else None

    async def list_orchestrations(
        self, status: str | None = None, limit: int = 50
    ) -> list[OrchestrationRow]:
        where, params = ("WHERE status = ?", (status,)) if status else ("", ())
        return await self._select_orchestrations(
            f"{where} ORDER BY created_at DESC LIMIT ?", (*params, limit), with_document=False
        )

    async def unfinished(self) -> list[OrchestrationRow]:
        return await self._select_orchestrations(
            "WHERE status IN ('pending', 'running') ORDER BY created_at", ()
        )

    async def matching_ids(self, prefix: str, limit: int = 10) -> list[str]:
        # substr, not LIKE: SQLite refuses a LIKE pattern over 50,000 bytes
        cursor = await self._db.execute(
            "SELECT id FROM orchestrations WHERE substr(id, 1, length(?1)) = ?1 COLLATE NOCASE "
            "ORDER BY created_at DESC LIMIT ?2",
            (prefix, limit),
        )
        return [row[0] for row in await cursor.fetchall()]

    async def _select_orchestrations(
        self, clause: str, params: Sequence[Any], *, with_document: bool = True
    ) -> list[OrchestrationRow]:
        """Rows matching ``clause``; without ``with_document`` the (large) stored document is
        neither read nor parsed, and the row's ``document`` is empty."""
        document = "document" if with_document else "'{}'"
        cursor = await self._db.execute(
            f"SELECT id, name, status, {document}, created_at, started_at, finished_at, error, "
            "max_parallel, run_dir, idempotency_key, source, owner, lease_until, owner_process, "
            f"budget FROM orchestrations {clause}",
            params,
        )
        rows = await cursor.fetchall()
        return [
            OrchestrationRow(
                id=r[0],
                name=r[1],
                status=r[2],
                document=json.loads(r[3]),
                created_at=r[4],
                started_at=r[5],
                finished_at=r[6],
                error=r[7],
                max_parallel=r[8],
                run_dir=r[9],
                idempotency_key=r[10],
                source=r[11],
                owner=r[12],
                lease_until=r[13],
                owner_process=r[14],
                budget=json.loads(r[15]) if r[15] is not None else None,
            )
            for r in rows
        ]

    async def load_tasks(self, orchestration_id: str) -> list[TaskRow]:
        cursor = await self._db.execute(
            "SELECT orchestration_id, task_id, position, type, label, state, parent_id, attempts, "
            "max_attempts, started_at, finished_at, output, error, error_class, reason, chain, "
            "item, item_index FROM tasks WHERE orchestration_id = ? ORDER BY position",
            (orchestration_id,),
        )
        rows = await cursor.fetchall()
        return [task_row(*r[:15], json.loads(r[15]) if r[15] else [], r[16], r[17]) for r in rows]

    async def count_task_states(self, orchestration_id: str) -> dict[str, int]:
        """How many of the orchestration's tasks are in each state (states with none left out)."""
        rows = await self._db.execute_fetchall(
            "SELECT state, count(*) FROM tasks WHERE orchestration_id = ? GROUP BY state",
            (orchestration_id,),
        )
        return {state: number for state, number in rows}

    async def count_running_fan_outs(self, orchestration_id: str) -> int:
        """How many of the orchestration's running tasks are fan-outs with items (a fan-out's
        first item is ``<its id>[0]``)."""
        rows = await self._db.execute_fetchall(
            "SELECT count(*) FROM tasks AS parent WHERE parent.orchestration_id = ? "
            "AND parent.state = 'running' AND EXISTS (SELECT 1 FROM tasks AS item "
            "WHERE item.orchestration_id = parent.orchestration_id "
            "AND item.task_id = parent.task_id || '[0]')",
            (orchestration_id,),
        )
        return int(next(iter(rows))[0])

    async def load_ranked_tasks(
        self,
        orchestration_id: str,
        rank: dict[str, int] | None = None,
        *,
        limit: int = -1,
        offset: int = 0,
    ) -> list[tuple[TaskRow, bool]]:
        """Tasks ordered by ``(rank[state], position)`` (states ``rank`` leaves out last; by
        position alone without ``rank``), at most ``limit`` (all when negative) from ``offset``
        on. Each row comes without its output and item (a status shows neither), with whether
        it has an output."""
        order = "position"
        params: list[Any] = [orchestration_id]
        if rank:
            order = f"CASE state {' WHEN ? THEN ?' * len(rank)} ELSE ? END, position"
            params.extend(value for pair in rank.items() for value in pair)
            params.append(max(rank.values()) + 1)
        rows = await self._db.execute_fetchall(
            f"SELECT {STATUS_COLUMNS} FROM tasks WHERE orchestration_id = ? "
            f"ORDER BY {order} LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [status_row(r) for r in rows]

    async def load_tasks_by_id(
        self, orchestration_id: str, task_ids: Sequence[str]
    ) -> list[tuple[TaskRow, bool]]:
        """The named tasks that exist, in no particular order, as ``load_ranked_tasks`` gives
        them (without output or item, with whether there is an output)."""
        ids = list(task_ids)
        found: list[tuple[TaskRow, bool]] = []
        for start in range(0, len(ids), 500):  # well under SQLite's limit on parameters
            chunk = ids[start : start + 500]
            rows = await self._db.execute_fetchall(
                f"SELECT {STATUS_COLUMNS} FROM tasks WHERE orchestration_id = ? "
                f"AND task_id IN ({','.join('?' * len(chunk))})",
                (orchestration_id, *chunk),
            )
            found.extend(status_row(r) for r in rows)
        return found

    async def load_attempts(self, orchestration_id: str) -> list[AttemptRow]:
        # one trip to the connection's thread, not two
        rows = await self._db.execute_fetchall(_ATTEMPTS_OF, (orchestration_id,))
        return [AttemptRow(*r) for r in rows]

    async def usage_totals(self, orchestration_id: str) -> Totals:
        """What every attempt's model calls used in all (retried attempts included)."""
        rows = await self._db.execute_fetchall(
            "SELECT sum(input_tokens), sum(output_tokens), sum(cost_usd), sum(model_calls), "
            "sum(unpriced_calls) FROM attempts WHERE orchestration_id = ? "
            "AND model_calls IS NOT NULL",
            (orchestration_id,),
        )
        values = next(iter(rows))
        return Totals(
            input_tokens=values[0] or 0,
            output_tokens=values[1] or 0,
            cost_usd=values[2] or 0.0,
            calls=values[3] or 0,
            unpriced_calls=values[4] or 0,
        )

    async def event_pages(
        self, orchestration_id: str, size: int = 5000
    ) -> AsyncIterator[list[EventRecord]]:
        """All the orchestration's events, ``size`` at a time (a large run has hundreds of
        thousands: one page in memory at once)."""
        after = 0
        while page := await self.load_events(orchestration_id, after, size):
            yield page
            after = page[-1].seq

    async def load_events(
        self, orchestration_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        cursor = await self._db.execute(
            _EVENTS_AFTER, (orchestration_id, after_seq, -1 if limit is None else limit)
        )
        return [
            EventRecord(
                seq=r[0],
                ts=r[1],
                task_id=r[2],
                kind=r[3],
                level=r[4],
                message=r[5],
                data=json.loads(r[6]) if r[6] else None,
            )
            for r in await cursor.fetchall()
        ]


def event_row_pages_here(
    path: Path, orchestration_id: str, size: int = 5000
) -> Iterator[list[EventRow]]:
    """All the orchestration's events as plain tuples (``EventRow``), ``size`` at a time, read
    on the calling thread through a read-only connection of their own: for writing the log on
    a worker thread, a page in memory at once (building an ``EventRecord`` per event cost more
    than reading it)."""
    with _read_only(path) as db:
        after = 0
        while True:
            page: list[EventRow] = db.execute(
                _EVENTS_AFTER,
                (orchestration_id, after, size),
            ).fetchall()
            if page:
                yield page
            if len(page) < size:  # the last page: no trip to find the next one empty
                return
            after = page[-1][0]


def attempt_rows_here(path: Path, orchestration_id: str) -> list[AttemptRow]:
    """``Reader.load_attempts``, read on the calling thread through a read-only connection of
    its own (for laying out a report on a worker thread): the rows made one at a time as
    they are read, their repeated texts (the run's id, outcomes, what they waited for) shared."""
    shared: dict[str, str] = {}

    def one(text: str | None) -> str | None:
        return None if text is None else shared.setdefault(text, text)

    with _read_only(path) as db:
        attempts = []
        for row in db.execute(_ATTEMPTS_OF, (orchestration_id,)):
            attempt = AttemptRow(*row)
            attempt.orchestration_id = orchestration_id
            attempt.outcome, attempt.error_class = one(attempt.outcome), one(attempt.error_class)
            attempt.waited_for, attempt.model = one(attempt.waited_for), one(attempt.model)
            attempts.append(attempt)
        return attempts


def _read_only(path: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True))
