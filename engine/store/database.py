"""``Store``: the state database opened and closed, and its collaborators' methods under one
name.

One SQLite file in WAL mode, two connections: reads go through an aiosqlite connection, writes
through a connection of their own on one thread (``connection``). ``Store`` opens both and
hands them to the collaborators that do the work: ``Writer`` (group commit, fencing, single
statements), ``Reader`` (queries), ``Leases`` (which process runs a run), ``Approvals``
(approval requests and decisions), ``Schedules`` (recurring runs). Their methods are bound onto
the store once, when it is made, so that a call on the hot path (``put_task_later``,
``add_event``, ``flush``) costs what it would if they were the store's own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import aiosqlite

from multi_task_orchestrator.engine.store.approvals import Approvals
from multi_task_orchestrator.engine.store.connection import WriteConnection
from multi_task_orchestrator.engine.store.errors import StoreError
from multi_task_orchestrator.engine.store.leases import Leases
from multi_task_orchestrator.engine.store.reader import (
    Reader,
    attempt_rows_here,
    event_row_pages_here,
)
from multi_task_orchestrator.engine.store.rows import AttemptRow, EventRow
from multi_task_orchestrator.engine.store.schedules import Schedules
from multi_task_orchestrator.engine.store.schema import prepare
from multi_task_orchestrator.engine.store.writer import Writer


class Store:
    """The state database. Open it with ``await Store.open(path)``; close with ``aclose()``."""

    def __init__(self, path: Path, connection: aiosqlite.Connection, writes: WriteConnection):
        self.path = path
        self._db = connection
        self._writes = writes
        writer = self._writer = Writer(path, writes)
        reader = Reader(connection)
        leases = Leases(writer, connection)
        approvals = Approvals(writer, connection)
        # fencing: which generation of a run this store writes (``Writer``)
        self.hold = writer.hold
        self.let_go = writer.let_go
        self.holds = writer.holds
        # queued writes, committed together (``Writer``)
        self.put_orchestration = writer.put_orchestration
        self.put_task = writer.put_task
        self.put_task_later = writer.put_task_later
        self.put_attempt = writer.put_attempt
        self.add_event = writer.add_event
        self.flush = writer.flush
        self.commit_now = writer.commit_now
        # leases, and what a dead process left open (``Leases``)
        self.claim = leases.claim
        self.claim_finished = leases.claim_finished
        self.renew = leases.renew
        self.release = leases.release
        self.close_interrupted_attempts = leases.close_interrupted_attempts
        self.died_twice = leases.died_twice
        # reads (``Reader``)
        self.exists = reader.exists
        self.get_orchestration = reader.get_orchestration
        self.find_idempotent = reader.find_idempotent
        self.list_orchestrations = reader.list_orchestrations
        self.unfinished = reader.unfinished
        self.matching_ids = reader.matching_ids
        self.load_tasks = reader.load_tasks
        self.count_task_states = reader.count_task_states
        self.count_running_fan_outs = reader.count_running_fan_outs
        self.load_ranked_tasks = reader.load_ranked_tasks
        self.load_tasks_by_id = reader.load_tasks_by_id
        self.load_attempts = reader.load_attempts
        self.usage_totals = reader.usage_totals
        self.event_pages = reader.event_pages
        self.load_events = reader.load_events
        # approval requests and decisions, seen by other processes at once (``Approvals``)
        self.request_approval = approvals.request_approval
        self.decide_approval = approvals.decide_approval
        self.forget_approvals = approvals.forget_approvals
        self.get_approval = approvals.get_approval
        self.approvals_of = approvals.approvals_of
        self.waiting_approvals = approvals.waiting_approvals
        # the schedules and their fires (``Schedules``)
        schedules = Schedules(writer, connection)
        self.insert_schedule = schedules.insert_schedule
        self.get_schedule = schedules.get_schedule
        self.list_schedules = schedules.list_schedules
        self.due_schedules = schedules.due_schedules
        self.next_fire = schedules.next_fire
        self.matching_schedule_ids = schedules.matching_schedule_ids
        self.delete_schedule = schedules.delete_schedule
        self.set_schedule_paused = schedules.set_schedule_paused
        self.claim_fire = schedules.claim_fire
        self.queue_fire = schedules.queue_fire
        self.take_queued = schedules.take_queued
        self.record_fire = schedules.record_fire
        self.record_skip = schedules.record_skip
        self.record_schedule_error = schedules.record_schedule_error

    @classmethod
    async def open(cls, path: str | Path) -> Store:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the state database {path}: {exc}") from None
        try:
            await prepare(connection)
        except sqlite3.DatabaseError as exc:
            await connection.close()
            raise StoreError(
                f"the state database {path} is damaged or not a database ({exc}); "
                "move it aside to start afresh, or restore it from a backup"
            ) from None
        except StoreError:
            await connection.close()
            raise
        try:
            writes = await WriteConnection.open(path)
        except sqlite3.Error as exc:
            await connection.close()
            raise StoreError(f"cannot open the state database {path}: {exc}") from None
        return cls(path, connection, writes)

    async def aclose(self) -> None:
        """Commit what is queued and close; the file is closed even when that commit fails."""
        try:
            await self.flush()
        finally:
            await self._writer.stop()
            await self._db.close()
            await self._writes.close()

    def event_row_pages_here(
        self, orchestration_id: str, size: int = 5000
    ) -> Iterator[list[EventRow]]:
        """The run's events as plain rows, a page at a time, read on the calling thread (a
        worker thread: ``reader.event_row_pages_here``)."""
        return event_row_pages_here(self.path, orchestration_id, size)

    def attempt_rows_here(self, orchestration_id: str) -> list[AttemptRow]:
        """The run's attempts (``load_attempts``), read on the calling thread (a worker
        thread: ``reader.attempt_rows_here``)."""
        return attempt_rows_here(self.path, orchestration_id)

    @property
    def on_fenced(self) -> Callable[[set[str]], None] | None:
        """Called with the runs whose writes were refused (another process took them over)."""
        return self._writer.on_fenced

    @on_fenced.setter
    def on_fenced(self, callback: Callable[[set[str]], None] | None) -> None:
        self._writer.on_fenced = callback
