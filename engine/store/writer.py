"""Group commit: writes are queued and committed together.

A writer coroutine takes everything queued since its last commit and applies it in one
transaction (task rows coalesced, so a task that went queued -> running -> succeeded within one
batch is written once). ``flush()`` returns once everything queued before the call is on disk,
which is what the scheduler waits for before it lets dependents start. One transaction per
transition would cost ~50x the executor itself.

A small batch that someone waits for — a finished task whose dependents wait — is committed on
the event loop itself: the trip to the writer thread and back costs more than the commit
(~0.2 ms against ~0.07 ms), and a chain of dependent tasks pays it at every step. It never waits
for another process: when one holds the lock, the batch goes to the thread, which does.

Writes are fenced: each claim of a run adds one to its ``generation``, and a batch writes a run's
rows only if the generation stored is still the one this store claimed (checked inside the
batch's own transaction). A process that lost its run while it stalled has its writes of that
run dropped, and is told (``on_fenced``) so that it stops working on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from multi_task_orchestrator.engine.store.batch import (
    LOST,
    Batch,
    build_rows,
    build_rows_here,
    commit_batch,
    execute_one,
    execute_returning,
)
from multi_task_orchestrator.engine.store.connection import WriteConnection
from multi_task_orchestrator.engine.store.errors import BUSY_RETRIES, StoreError, busy
from multi_task_orchestrator.engine.store.rows import AttemptRow, OrchestrationRow, TaskRow

# How long a write nobody waits for (a task started, a log line) may wait to join a commit.
# Committing at once would spend a commit on every start, and a chain of tasks would then wait
# for two commits per step instead of one.
COMMIT_DELAY = 0.05
INLINE_COMMIT_ROWS = 64  # the most rows a batch may hold to be committed on the event loop


class Writer:
    """Queues the store's writes and commits them, fenced, from a coroutine of its own; also
    runs single statements outside any batch (``write``)."""

    def __init__(self, path: Path, writes: WriteConnection) -> None:
        self._path = path
        self._writes = writes
        self._batch = Batch()
        self._wakeup = asyncio.Event()
        self._commit_timer: asyncio.TimerHandle | None = None
        self._in_flight: Batch | None = None  # the batch being committed
        self._failure: BaseException | None = None
        self._transactions = asyncio.Lock()
        self.held: dict[str, int] = {}  # run -> the generation this store's owner claimed
        # called with the runs whose writes were refused (another process took them over)
        self.on_fenced: Callable[[set[str]], None] | None = None
        self._loop = asyncio.create_task(self._write_loop(), name="orchestrator-store-writer")

    async def stop(self) -> None:
        """Stop the writer coroutine (``flush`` first to commit what is queued)."""
        self._loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._loop

    # --- fencing -------------------------------------------------------------------------

    def hold(self, orchestration_id: str, generation: int = 0) -> None:
        """Write the run as the owner of ``generation`` (0 for a run this process created):
        its rows are committed only while the stored generation is still that one."""
        self.held[orchestration_id] = generation

    def let_go(self, orchestration_id: str) -> None:
        """Another process holds the run now: drop whatever is still queued for it here."""
        self.held[orchestration_id] = LOST

    def holds(self, orchestration_id: str) -> bool:
        return self.held.get(orchestration_id, 0) != LOST

    # --- queued writes --------------------------------------------------------------------

    def put_orchestration(self, row: OrchestrationRow) -> None:
        queued = self._batch.orchestrations.get(row.id)
        if row.document is None and queued is not None:
            row.document = queued.document  # the row may not be inserted yet
        self._batch.orchestrations[row.id] = row
        self._queued()

    def put_task(self, row: TaskRow) -> None:
        self._batch.tasks[(row.orchestration_id, row.task_id)] = row
        self._queued()

    def put_task_later(
        self, orchestration_id: str, task_id: str, build: Callable[[], TaskRow]
    ) -> None:
        """Queue a task's row to be built when the batch is taken: a task that changes state
        several times before the next commit has its row built (and written) once."""
        self._batch.tasks[(orchestration_id, task_id)] = build
        self._queued()

    def put_attempt(self, row: AttemptRow) -> None:
        self._batch.attempts[(row.orchestration_id, row.task_id, row.attempt)] = row
        self._queued()

    def add_event(
        self,
        orchestration_id: str,
        task_id: str | None,
        kind: str,
        message: str,
        *,
        ts: float,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        encoded = json.dumps(data, default=str) if data else None
        self._batch.events.append((orchestration_id, task_id, ts, kind, level, message, encoded))
        self._queued()

    def _queued(self) -> None:
        """Something was queued: commit it within COMMIT_DELAY, or sooner if a flush asks."""
        if self._commit_timer is None:
            loop = asyncio.get_running_loop()
            self._commit_timer = loop.call_later(COMMIT_DELAY, self._wakeup.set)

    async def flush(self) -> None:
        """Return once everything queued so far is committed; raise if the commit failed."""
        if self._failure is not None:
            raise StoreError(f"the state database {self._path} cannot be written: {self._failure}")
        # nothing queued since the last batch was taken: that batch may still be committing
        batch = self._batch if self._batch else self._in_flight
        if batch is None:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        batch.waiters.append(waiter)
        self._wakeup.set()
        await waiter

    def commit_now(self) -> bool:
        """Commit what is queued here and now, on the event loop, when it is a small batch,
        nothing is being committed and no other process holds the database: True once
        everything queued is committed (``flush`` would return at once), False when the caller
        must ``flush``. A finished task's dependents start without waking the writer and
        waiting for it, two turns of the event loop at every step of a chain."""
        if self._failure is not None or self._in_flight is not None:
            return False
        batch = self._batch
        if not batch:
            return True
        rows = len(batch.orchestrations) + len(batch.tasks)
        rows += len(batch.attempts) + len(batch.events)
        if rows > INLINE_COMMIT_ROWS or self._transactions.locked():
            return False
        build_rows_here(batch, self.held)
        try:
            fenced: set[str] = self._writes.run_here(commit_batch, batch)
        except sqlite3.OperationalError as exc:
            if busy(exc):
                return False  # left queued, rows to be built again: the writer commits it
            self._failed(batch, exc)
            raise StoreError(f"the state database {self._path} cannot be written: {exc}") from None
        except Exception as exc:
            self._failed(batch, exc)
            raise StoreError(f"the state database {self._path} cannot be written: {exc}") from None
        self._batch = Batch()
        if self._commit_timer is not None:
            self._commit_timer.cancel()
            self._commit_timer = None
        if fenced:
            self._fenced(fenced)
        for waiter in batch.waiters:
            if not waiter.done():
                waiter.set_result(None)
        return True

    def _failed(self, batch: Batch, exc: BaseException) -> None:
        """The commit of ``batch`` failed (not for a lock): every later write fails too."""
        self._batch = Batch()
        self._failure = exc
        for waiter in batch.waiters:
            if not waiter.done():
                waiter.set_exception(
                    StoreError(f"the state database {self._path} cannot be written: {exc}")
                )

    # --- the commit -----------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._commit_timer is not None:
                self._commit_timer.cancel()
                self._commit_timer = None
            # in a call of its own, so that nothing holds the batch (a run's first one has its
            # whole document) while the loop waits for the next
            await self._commit_queued()

    async def _commit_queued(self) -> None:
        batch, self._batch = self._batch, Batch()
        self._in_flight = batch
        try:
            await build_rows(batch, self.held)
            fenced: set[str] = set()
            if batch:
                here = self._commit_here(batch)
                fenced = await self._commit(batch) if here is None else here
            if fenced:
                self._fenced(fenced)
        except Exception as exc:  # the disk is full or the file went away: tell every waiter
            self._failure = exc
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_exception(
                        StoreError(f"the state database {self._path} cannot be written: {exc}")
                    )
            return
        finally:
            self._in_flight = None
        for waiter in batch.waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _fenced(self, fenced: set[str]) -> None:
        """Writes of these runs were refused: another process took them over."""
        for orchestration_id in fenced:
            self.held[orchestration_id] = LOST
        if self.on_fenced is not None:
            self.on_fenced(fenced)

    def _commit_here(self, batch: Batch) -> set[str] | None:
        """Commit a small batch that someone waits for on the event loop, without waiting for
        a lock; None (nothing written) when it is not such a batch or the lock is taken, else
        the runs whose rows were refused (``commit_batch``)."""
        rows = len(batch.orchestrations) + len(batch.task_rows)
        rows += len(batch.attempts) + len(batch.events)
        if not batch.waiters or rows > INLINE_COMMIT_ROWS or self._transactions.locked():
            return None  # (the lock is held while the writer thread uses the connection)
        try:
            fenced: set[str] = self._writes.run_here(commit_batch, batch)
        except sqlite3.OperationalError as exc:
            if busy(exc):
                return None
            raise
        return fenced

    async def _commit(self, batch: Batch) -> set[str]:
        async with self._transactions:
            for attempt in range(BUSY_RETRIES):
                try:
                    return await self._commit_once(batch)
                except sqlite3.OperationalError as exc:
                    if not busy(exc) or attempt == BUSY_RETRIES - 1:
                        raise
                    await asyncio.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    async def _commit_once(self, batch: Batch) -> set[str]:
        fenced: set[str] = await self._writes.run(commit_batch, batch)
        return fenced

    # --- single statements ----------------------------------------------------------------

    async def write(self, sql: str, params: Sequence[Any]) -> int:
        """One statement in its own transaction, never inside a group commit; retried while
        another process holds the database (SQLITE_BUSY). Returns the rows changed."""
        return await self._write_alone(execute_one, sql, params)

    async def write_returning(self, sql: str, params: Sequence[Any]) -> Any:
        """``write`` for a statement ``RETURNING`` one value: that value, or None when no
        row changed."""
        return await self._write_alone(execute_returning, sql, params)

    async def _write_alone(
        self, execute: Callable[..., Any], sql: str, params: Sequence[Any]
    ) -> Any:
        """``execute(connection, sql, params)`` on the writer thread, as ``write`` says."""
        async with self._transactions:
            for attempt in range(BUSY_RETRIES):
                try:
                    return await self._writes.run(execute, sql, params)
                except sqlite3.OperationalError as exc:
                    if busy(exc) and attempt < BUSY_RETRIES - 1:
                        await asyncio.sleep(0.05 * 2**attempt)
                        continue
                    problem = "is busy" if busy(exc) else "cannot be written"
                    raise StoreError(f"the state database {self._path} {problem}: {exc}") from None
        raise AssertionError("unreachable")
