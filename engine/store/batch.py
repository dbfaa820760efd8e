"""One group commit: what a batch holds, how its rows are built, and the transaction that
applies it — fenced, so that rows of a run another process took over are left out."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from multi_task_orchestrator.engine.store.rows import (
    INSERT_EVENT,
    UPSERT_ATTEMPT,
    UPSERT_ORCHESTRATION,
    UPSERT_TASK,
    AttemptRow,
    OrchestrationRow,
    TaskRow,
    orchestration_params,
    shallow_values,
    task_params,
)

ROWS_PER_SLICE = 1_000  # task rows built between two turns of the event loop
LOST = -1  # the generation held of a run taken over: no stored generation matches it


@dataclass(slots=True)
class Batch:
    orchestrations: dict[str, OrchestrationRow] = field(default_factory=dict)
    # a row, or a function that builds it when the batch is taken (the state it has then)
    tasks: dict[tuple[str, str], TaskRow | Callable[[], TaskRow]] = field(default_factory=dict)
    task_rows: list[TaskRow] = field(default_factory=list)  # ``tasks`` built, at commit time
    attempts: dict[tuple[str, str, int], AttemptRow] = field(default_factory=dict)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    fences: dict[str, int] = field(default_factory=dict)  # run -> generation its rows need

    def __bool__(self) -> bool:
        return bool(self.orchestrations or self.tasks or self.attempts or self.events)


async def build_rows(batch: Batch, held: dict[str, int]) -> None:
    """Build the rows queued as functions, on the event loop thread that owns their state, and
    note the generation each run's rows need (of the runs this store holds).

    A large batch (a 10,000-task run's first commit) is built in slices, letting the loop answer
    between them: a row built late shows the latest state, and a change after its row was built
    queues the row again, for the next batch."""
    queued = list(batch.tasks.values())
    rows: list[TaskRow] = []
    for start in range(0, len(queued), ROWS_PER_SLICE):
        if start:
            await asyncio.sleep(0)
        rows += [
            row if isinstance(row, TaskRow) else row()
            for row in queued[start : start + ROWS_PER_SLICE]
        ]
    batch.task_rows = rows
    _note_fences(batch, held)


def build_rows_here(batch: Batch, held: dict[str, int]) -> None:
    """``build_rows`` for a small batch, at once (no turn of the event loop in between)."""
    batch.task_rows = [row if isinstance(row, TaskRow) else row() for row in batch.tasks.values()]
    _note_fences(batch, held)


def _note_fences(batch: Batch, held: dict[str, int]) -> None:
    if not held:
        return
    runs = set(batch.orchestrations)
    runs.update(key[0] for key in batch.tasks)
    runs.update(key[0] for key in batch.attempts)
    runs.update(event[0] for event in batch.events)
    batch.fences = {run: held[run] for run in runs if run in held}


def _refused(db: sqlite3.Connection, fences: dict[str, int]) -> set[str]:
    """The runs of ``fences`` whose stored generation is not the one their rows need (a run
    not stored yet is being created by this batch: it is not refused)."""
    if not fences:
        return set()
    ids = list(fences)
    rows = db.execute(
        f"SELECT id, generation FROM orchestrations WHERE id IN ({','.join('?' * len(ids))})",
        ids,
    ).fetchall()
    refused = {run for run, generation in rows if generation != fences[run]}
    refused.update(run for run, generation in fences.items() if generation == LOST)
    return refused


def _drop(batch: Batch, refused: set[str]) -> None:
    """Take the rows of the ``refused`` runs out of the batch."""
    for run in refused:
        batch.orchestrations.pop(run, None)
    batch.task_rows = [r for r in batch.task_rows if r.orchestration_id not in refused]
    batch.attempts = {key: r for key, r in batch.attempts.items() if key[0] not in refused}
    batch.events = [event for event in batch.events if event[0] not in refused]


def commit_batch(db: sqlite3.Connection, batch: Batch) -> set[str]:
    """Apply one batch in one transaction (on the writer thread, or inline on the event loop),
    but none of the rows of runs another process took over; return those runs."""
    db.execute("BEGIN IMMEDIATE")
    try:
        refused = _refused(db, batch.fences)
        if refused:
            _drop(batch, refused)
        if batch.orchestrations:
            db.executemany(
                UPSERT_ORCHESTRATION,
                [orchestration_params(r) for r in batch.orchestrations.values()],
            )
        if batch.task_rows:
            db.executemany(UPSERT_TASK, [task_params(r) for r in batch.task_rows])
        if batch.attempts:
            db.executemany(UPSERT_ATTEMPT, [shallow_values(r) for r in batch.attempts.values()])
        if batch.events:
            db.executemany(INSERT_EVENT, batch.events)
        db.execute("COMMIT")
        return refused
    except BaseException:
        # A failed COMMIT (e.g. a full disk) may have rolled back already; keep its error.
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


def execute_one(db: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
    """One statement in its own transaction; returns the rows it changed."""
    return db.execute(sql, params).rowcount


def execute_returning(db: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Any:
    """One statement ``RETURNING`` one value, in its own transaction: the first row's value,
    or None when it changed no row."""
    rows = db.execute(sql, params).fetchall()  # read to the end: the statement completes
    return rows[0][0] if rows else None
