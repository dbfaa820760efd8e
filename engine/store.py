"""SQLite persistence for orchestrations, tasks, attempts and the event log, with group commit.

Writes are queued and committed together: a writer coroutine takes everything queued since its
last commit and applies it in one transaction (task rows coalesced, so a task that went
queued -> running -> succeeded within one batch is written once). ``flush()`` returns once
everything queued before the call is on disk, which is what the scheduler waits for before it
lets dependents start. One transaction per transition would cost ~50x the executor itself.

Writes go through one connection of their own on one thread, and a whole transaction is one trip
to that thread (through aiosqlite every statement would be a trip of its own). A small batch that
someone waits for — a finished task whose dependents wait — is committed on the event loop
itself: the trip there and back costs more than the commit (~0.2 ms against ~0.07 ms), and a
chain of dependent tasks pays it at every step. It never waits for another process: when one
holds the lock, the batch goes to the thread, which does. Reads use an aiosqlite connection;
WAL lets them run while a commit is under way.

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
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import aiosqlite

from multi_task_orchestrator.engine.state import EventRecord

SCHEMA_VERSION = 5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orchestrations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    document TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    error TEXT,
    max_parallel INTEGER NOT NULL DEFAULT 0,
    run_dir TEXT,
    idempotency_key TEXT UNIQUE,
    source TEXT,
    owner TEXT,
    lease_until REAL,
    owner_process TEXT,
    generation INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS orchestrations_by_status ON orchestrations (status, created_at);
CREATE TABLE IF NOT EXISTS tasks (
    orchestration_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    parent_id TEXT,
    position INTEGER NOT NULL,
    type TEXT NOT NULL,
    label TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 1,
    started_at REAL,
    finished_at REAL,
    output TEXT,
    error TEXT,
    error_class TEXT,
    reason TEXT,
    chain TEXT,
    item TEXT,
    item_index INTEGER,
    PRIMARY KEY (orchestration_id, task_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attempts (
    orchestration_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT,
    error TEXT,
    error_class TEXT,
    queued_at REAL,
    waited_for TEXT,
    PRIMARY KEY (orchestration_id, task_id, attempt)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    orchestration_id TEXT NOT NULL,
    task_id TEXT,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT
);
CREATE INDEX IF NOT EXISTS events_by_orchestration ON events (orchestration_id, seq);
"""


BUSY_RETRIES = 6
BUSY_TIMEOUT_MS = 10_000  # how long a statement waits for another process's lock
# How long a write nobody waits for (a task started, a log line) may wait to join a commit.
# Committing at once would spend a commit on every start, and a chain of tasks would then wait
# for two commits per step instead of one.
COMMIT_DELAY = 0.05
INLINE_COMMIT_ROWS = 64  # the most rows a batch may hold to be committed on the event loop
ROWS_PER_SLICE = 1_000  # task rows built between two turns of the event loop
LOST = -1  # the generation held of a run taken over: no stored generation matches it
PROCESS_DIED = "process_died"  # the error class of an attempt its process left open


def _busy(error: sqlite3.OperationalError) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


class StoreError(Exception):
    """The state database cannot be used; the message names the file and what to do."""


@dataclass(slots=True)
class OrchestrationRow:
    id: str
    name: str
    status: str
    document: dict[str, Any] | None  # None: keep the stored one (a run's later saves)
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    max_parallel: int = 0
    run_dir: str | None = None
    idempotency_key: str | None = None
    source: str | None = None
    owner: str | None = None  # the engine running it; it holds the lease until lease_until
    lease_until: float | None = None
    owner_process: str | None = None  # the owner's host, pid, start time (engine.owner)


@dataclass(slots=True)
class TaskRow:
    orchestration_id: str
    task_id: str
    position: int
    type: str
    label: str
    state: str
    parent_id: str | None = None
    attempts: int = 0
    max_attempts: int = 1
    started_at: float | None = None
    finished_at: float | None = None
    output_json: str | None = None
    error: str | None = None
    error_class: str | None = None
    reason: str | None = None
    chain: list[str] = field(default_factory=list)
    item_json: str | None = None
    item_index: int | None = None

    @property
    def output(self) -> Any:
        return None if self.output_json is None else json.loads(self.output_json)


_TASK_ROW_FIELDS = tuple(item.name for item in fields(TaskRow))


def _task_row(*values: Any) -> TaskRow:
    """A TaskRow from a row's values in the order of its fields."""
    return TaskRow(**dict(zip(_TASK_ROW_FIELDS, values, strict=False)))


@dataclass(slots=True)
class AttemptRow:
    orchestration_id: str
    task_id: str
    attempt: int
    started_at: float
    finished_at: float | None = None
    outcome: str | None = None
    error: str | None = None
    error_class: str | None = None
    queued_at: float | None = None  # when the attempt became ready (waiting = started - queued)
    waited_for: str | None = None  # the pool that made it wait, e.g. "rate limit api (10/s)"


_UPSERT_ORCHESTRATION = """
INSERT INTO orchestrations (id, name, status, document, created_at, started_at, finished_at, error,
    max_parallel, run_dir, idempotency_key, source, owner, lease_until, owner_process)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT (id) DO UPDATE SET status=excluded.status, started_at=excluded.started_at,
    finished_at=excluded.finished_at, error=excluded.error, max_parallel=excluded.max_parallel,
    run_dir=excluded.run_dir
"""
_UPSERT_TASK = """
INSERT INTO tasks (orchestration_id, task_id, parent_id, position, type, label, state,
    attempts, max_attempts, started_at, finished_at, output, error, error_class, reason, chain,
    item, item_index)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT (orchestration_id, task_id) DO UPDATE SET state=excluded.state,
    attempts=excluded.attempts, max_attempts=excluded.max_attempts,
    started_at=excluded.started_at, finished_at=excluded.finished_at, output=excluded.output,
    error=excluded.error, error_class=excluded.error_class, reason=excluded.reason,
    chain=excluded.chain
"""
_UPSERT_ATTEMPT = """
INSERT INTO attempts (orchestration_id, task_id, attempt, started_at, finished_at, outcome, error,
    error_class, queued_at, waited_for)
VALUES (?,?,?,?,?,?,?,?,?,?)
ON CONFLICT (orchestration_id, task_id, attempt) DO UPDATE SET finished_at=excluded.finished_at,
    outcome=excluded.outcome, error=excluded.error, error_class=excluded.error_class
"""
_INSERT_EVENT = """
INSERT INTO events (orchestration_id, task_id, ts, kind, level, message, data)
VALUES (?,?,?,?,?,?,?)
"""


def _task_params(row: TaskRow) -> tuple[Any, ...]:
    return (
        row.orchestration_id,
        row.task_id,
        row.parent_id,
        row.position,
        row.type,
        row.label,
        row.state,
        row.attempts,
        row.max_attempts,
        row.started_at,
        row.finished_at,
        row.output_json,
        row.error,
        row.error_class,
        row.reason,
        json.dumps(row.chain) if row.chain else None,
        row.item_json,
        row.item_index,
    )


def _shallow_values(row: Any) -> tuple[Any, ...]:
    """A row's field values in order; unlike ``asdict``, nothing is deep-copied."""
    return tuple(getattr(row, f.name) for f in fields(row))


def _orchestration_params(row: OrchestrationRow) -> tuple[Any, ...]:
    values = _shallow_values(row)
    document = "{}" if row.document is None else json.dumps(row.document)
    return (*values[:3], document, *values[4:])


@dataclass(slots=True)
class _Batch:
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


class Store:
    """The state database. Open it with ``await Store.open(path)``; close with ``aclose()``."""

    def __init__(
        self, path: Path, connection: aiosqlite.Connection, writer: _WriteConnection
    ) -> None:
        self.path = path
        self._db = connection
        self._writes = writer
        self._batch = _Batch()
        self._wakeup = asyncio.Event()
        self._commit_timer: asyncio.TimerHandle | None = None
        self._in_flight: _Batch | None = None  # the batch being committed
        self._failure: BaseException | None = None
        self._transactions = asyncio.Lock()
        self._held: dict[str, int] = {}  # run -> the generation this store's owner claimed
        # called with the runs whose writes were refused (another process took them over)
        self.on_fenced: Callable[[set[str]], None] | None = None
        self._writer = asyncio.create_task(self._write_loop(), name="orchestrator-store-writer")

    @classmethod
    async def open(cls, path: str | Path) -> Store:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the state database {path}: {exc}") from None
        try:
            await _prepare(connection)
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
            writer = await _WriteConnection.open(path)
        except sqlite3.Error as exc:
            await connection.close()
            raise StoreError(f"cannot open the state database {path}: {exc}") from None
        return cls(path, connection, writer)

    async def aclose(self) -> None:
        """Commit what is queued and close; the file is closed even when that commit fails."""
        try:
            await self.flush()
        finally:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            await self._db.close()
            await self._writes.close()

    # --- fencing -------------------------------------------------------------------------

    def hold(self, orchestration_id: str, generation: int = 0) -> None:
        """Write the run as the owner of ``generation`` (0 for a run this process created):
        its rows are committed only while the stored generation is still that one."""
        self._held[orchestration_id] = generation

    def let_go(self, orchestration_id: str) -> None:
        """Another process holds the run now: drop whatever is still queued for it here."""
        self._held[orchestration_id] = LOST

    def holds(self, orchestration_id: str) -> bool:
        return self._held.get(orchestration_id, 0) != LOST

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
            raise StoreError(f"the state database {self.path} cannot be written: {self._failure}")
        # nothing queued since the last batch was taken: that batch may still be committing
        batch = self._batch if self._batch else self._in_flight
        if batch is None:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        batch.waiters.append(waiter)
        self._wakeup.set()
        await waiter

    async def _write_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._commit_timer is not None:
                self._commit_timer.cancel()
                self._commit_timer = None
            batch, self._batch = self._batch, _Batch()
            self._in_flight = batch
            try:
                await _build_rows(batch, self._held)
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
                            StoreError(f"the state database {self.path} cannot be written: {exc}")
                        )
                continue
            finally:
                self._in_flight = None
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _fenced(self, fenced: set[str]) -> None:
        """Writes of these runs were refused: another process took them over."""
        for orchestration_id in fenced:
            self._held[orchestration_id] = LOST
        if self.on_fenced is not None:
            self.on_fenced(fenced)

    def _commit_here(self, batch: _Batch) -> set[str] | None:
        """Commit a small batch that someone waits for on the event loop, without waiting for
        a lock; None (nothing written) when it is not such a batch or the lock is taken, else
        the runs whose rows were refused (``_commit_batch``)."""
        rows = len(batch.orchestrations) + len(batch.task_rows)
        rows += len(batch.attempts) + len(batch.events)
        if not batch.waiters or rows > INLINE_COMMIT_ROWS or self._transactions.locked():
            return None  # (the lock is held while the writer thread uses the connection)
        try:
            fenced: set[str] = self._writes.run_here(_commit_batch, batch)
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                return None
            raise
        return fenced

    async def _commit(self, batch: _Batch) -> set[str]:
        async with self._transactions:
            for attempt in range(BUSY_RETRIES):
                try:
                    return await self._commit_once(batch)
                except sqlite3.OperationalError as exc:
                    if not _busy(exc) or attempt == BUSY_RETRIES - 1:
                        raise
                    await asyncio.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    async def _commit_once(self, batch: _Batch) -> set[str]:
        fenced: set[str] = await self._writes.run(_commit_batch, batch)
        return fenced

    async def _write(self, sql: str, params: Sequence[Any]) -> int:
        """One statement in its own transaction, never inside a group commit; retried while
        another process holds the database (SQLITE_BUSY). Returns the rows changed."""
        return await self._write_alone(_execute_one, sql, params)

    async def _write_returning(self, sql: str, params: Sequence[Any]) -> Any:
        """``_write`` for a statement ``RETURNING`` one value: that value, or None when no
        row changed."""
        return await self._write_alone(_execute_returning, sql, params)

    async def _write_alone(
        self, execute: Callable[..., Any], sql: str, params: Sequence[Any]
    ) -> Any:
        """``execute(connection, sql, params)`` on the writer thread, as ``_write`` says."""
        async with self._transactions:
            for attempt in range(BUSY_RETRIES):
                try:
                    return await self._writes.run(execute, sql, params)
                except sqlite3.OperationalError as exc:
                    if _busy(exc) and attempt < BUSY_RETRIES - 1:
                        await asyncio.sleep(0.05 * 2**attempt)
                        continue
                    problem = "is busy" if _busy(exc) else "cannot be written"
                    raise StoreError(f"the state database {self.path} {problem}: {exc}") from None
        raise AssertionError("unreachable")

    async def close_interrupted_attempts(self, orchestration_id: str, ts: float) -> int:
        """Mark attempts a process left open as interrupted by its death (a process that
        stops gracefully closes its own: ``interrupted`` without a class); return how many."""
        await self.flush()
        return await self._write(
            "UPDATE attempts SET finished_at = ?, outcome = 'interrupted', error = ?, "
            "error_class = ? WHERE orchestration_id = ? AND finished_at IS NULL",
            (
                ts,
                "the process running this attempt died or stopped responding",
                PROCESS_DIED,
                orchestration_id,
            ),
        )

    async def died_twice(self, orchestration_id: str) -> set[str]:
        """Tasks whose last two attempts were both ended by their process dying."""
        rows = await self._db.execute_fetchall(
            "SELECT task_id, error_class FROM attempts WHERE orchestration_id = ? AND task_id IN "
            "(SELECT task_id FROM attempts WHERE orchestration_id = ? AND error_class = ?) "
            "ORDER BY task_id, attempt DESC",
            (orchestration_id, orchestration_id, PROCESS_DIED),
        )
        last_two: dict[str, list[str | None]] = {}
        for task_id, error_class in rows:
            classes = last_two.setdefault(task_id, [])
            if len(classes) < 2:
                classes.append(error_class)
        return {task for task, classes in last_two.items() if classes == [PROCESS_DIED] * 2}

    # --- leases: which live process runs an orchestration --------------------------------

    async def claim(
        self,
        orchestration_id: str,
        owner: str,
        lease_until: float,
        now: float,
        *,
        process: str | None = None,
        dead_owner: str | None = None,
    ) -> bool:
        """Take an unfinished orchestration whose lease is free or expired, or whose owner is
        ``dead_owner`` (known to be gone, whatever its lease says); True if taken. ``process``
        is recorded as the new owner's ``owner_process``."""
        generation = await self._write_returning(
            "UPDATE orchestrations SET owner = ?, lease_until = ?, owner_process = ?, "
            "generation = generation + 1 WHERE id = ? "
            "AND status IN ('pending', 'running') "
            "AND (owner IS NULL OR owner = ? OR owner = ? OR lease_until IS NULL "
            "OR lease_until < ?) RETURNING generation",
            (owner, lease_until, process, orchestration_id, owner, dead_owner, now),
        )
        if generation is None:
            return False
        self.hold(orchestration_id, generation)
        return True

    async def claim_finished(
        self, orchestration_id: str, owner: str, lease_until: float, *, process: str | None
    ) -> bool:
        """Take a finished orchestration to run (some of) it again: it becomes ``running``,
        owned by ``owner``. False when it is not finished (another process took it first)."""
        generation = await self._write_returning(
            "UPDATE orchestrations SET status = 'running', owner = ?, lease_until = ?, "
            "owner_process = ?, generation = generation + 1 WHERE id = ? "
            "AND status IN ('succeeded', 'failed', 'cancelled') RETURNING generation",
            (owner, lease_until, process, orchestration_id),
        )
        if generation is None:
            return False
        self.hold(orchestration_id, generation)
        return True

    async def renew(self, owner: str, ids: Sequence[str], lease_until: float) -> set[str]:
        """Extend the leases ``owner`` still holds among ``ids`` (in the generation it
        claimed); return those ids."""
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        await self._write(
            f"UPDATE orchestrations SET lease_until = ? WHERE owner = ? AND id IN ({marks})",
            (lease_until, owner, *ids),
        )
        cursor = await self._db.execute(
            f"SELECT id, generation FROM orchestrations WHERE owner = ? AND id IN ({marks})",
            (owner, *ids),
        )
        return {
            orchestration_id
            for orchestration_id, generation in await cursor.fetchall()
            if self._held.get(orchestration_id, generation) == generation
        }

    async def release(self, owner: str, ids: Sequence[str]) -> None:
        """Give up leases, so that any process may resume these orchestrations at once."""
        if ids:
            marks = ",".join("?" * len(ids))
            await self._write(
                "UPDATE orchestrations SET owner = NULL, lease_until = NULL, owner_process = NULL "
                f"WHERE owner = ? AND id IN ({marks})",
                (owner, *ids),
            )

    # --- reads ----------------------------------------------------------------------------

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
        cursor = await self._db.execute(
            "SELECT id FROM orchestrations WHERE id LIKE ? ESCAPE '\\' ORDER BY created_at DESC "
            "LIMIT ?",
            (prefix.replace("%", "\\%").replace("_", "\\_") + "%", limit),
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
            "max_parallel, run_dir, idempotency_key, source, owner, lease_until, owner_process "
            f"FROM orchestrations {clause}",
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
        return [_task_row(*r[:15], json.loads(r[15]) if r[15] else [], r[16], r[17]) for r in rows]

    # A task row as a status reads it: no output (it can be large) or item, whether there is
    # an output instead; ``_status_row`` makes it a TaskRow.
    _STATUS_COLUMNS = (
        "orchestration_id, task_id, position, type, label, state, parent_id, attempts, "
        "max_attempts, started_at, finished_at, output IS NOT NULL, error, error_class, reason, "
        "chain"
    )

    @staticmethod
    def _status_row(r: Sequence[Any]) -> tuple[TaskRow, bool]:
        """A row of ``_STATUS_COLUMNS`` as a TaskRow without output, and whether it has one."""
        # positional, as the columns come: r[11] (whether there is an output) is no field
        row = _task_row(*r[:11], None, r[12], r[13], r[14], json.loads(r[15]) if r[15] else [])
        return row, bool(r[11])

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
            f"SELECT {self._STATUS_COLUMNS} FROM tasks WHERE orchestration_id = ? "
            f"ORDER BY {order} LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [self._status_row(r) for r in rows]

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
                f"SELECT {self._STATUS_COLUMNS} FROM tasks WHERE orchestration_id = ? "
                f"AND task_id IN ({','.join('?' * len(chunk))})",
                (orchestration_id, *chunk),
            )
            found.extend(self._status_row(r) for r in rows)
        return found

    async def load_attempts(self, orchestration_id: str) -> list[AttemptRow]:
        cursor = await self._db.execute(
            "SELECT orchestration_id, task_id, attempt, started_at, finished_at, outcome, error, "
            "error_class, queued_at, waited_for FROM attempts WHERE orchestration_id = ? "
            "ORDER BY started_at",
            (orchestration_id,),
        )
        return [AttemptRow(*r) for r in await cursor.fetchall()]

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
            "SELECT seq, ts, task_id, kind, level, message, data FROM events "
            "WHERE orchestration_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (orchestration_id, after_seq, -1 if limit is None else limit),
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


class _WriteConnection:
    """The connection every write goes through, used from one thread of its own."""

    def __init__(self, connection: sqlite3.Connection, thread: ThreadPoolExecutor) -> None:
        self._connection = connection
        self._thread = thread

    @classmethod
    async def open(cls, path: Path) -> _WriteConnection:
        thread = ThreadPoolExecutor(1, thread_name_prefix="orchestrator-store")

        def connect() -> sqlite3.Connection:
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA synchronous = NORMAL")
            return connection

        try:
            connection = await asyncio.get_running_loop().run_in_executor(thread, connect)
        except BaseException:
            thread.shutdown(wait=False)
            raise
        return cls(connection, thread)

    async def run(self, work: Callable[..., Any], *args: Any) -> Any:
        """``work(connection, *args)`` on the writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, work, self._connection, *args)

    def run_here(self, work: Callable[..., Any], *args: Any) -> Any:
        """``work(connection, *args)`` on the calling thread, while the writer thread is idle,
        failing at once (SQLITE_BUSY) rather than waiting when another process holds the
        lock."""
        self._connection.execute("PRAGMA busy_timeout = 0")
        try:
            return work(self._connection, *args)
        finally:
            self._connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    async def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            await self.run(sqlite3.Connection.close)
        self._thread.shutdown(wait=False)


async def _build_rows(batch: _Batch, held: dict[str, int]) -> None:
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


def _drop(batch: _Batch, refused: set[str]) -> None:
    """Take the rows of the ``refused`` runs out of the batch."""
    for run in refused:
        batch.orchestrations.pop(run, None)
    batch.task_rows = [r for r in batch.task_rows if r.orchestration_id not in refused]
    batch.attempts = {key: r for key, r in batch.attempts.items() if key[0] not in refused}
    batch.events = [event for event in batch.events if event[0] not in refused]


def _commit_batch(db: sqlite3.Connection, batch: _Batch) -> set[str]:
    """Apply one batch in one transaction (on the writer thread, or inline: ``_commit_here``),
    but none of the rows of runs another process took over; return those runs."""
    db.execute("BEGIN IMMEDIATE")
    try:
        refused = _refused(db, batch.fences)
        if refused:
            _drop(batch, refused)
        if batch.orchestrations:
            db.executemany(
                _UPSERT_ORCHESTRATION,
                [_orchestration_params(r) for r in batch.orchestrations.values()],
            )
        if batch.task_rows:
            db.executemany(_UPSERT_TASK, [_task_params(r) for r in batch.task_rows])
        if batch.attempts:
            db.executemany(_UPSERT_ATTEMPT, [_shallow_values(r) for r in batch.attempts.values()])
        if batch.events:
            db.executemany(_INSERT_EVENT, batch.events)
        db.execute("COMMIT")
        return refused
    except BaseException:
        # A failed COMMIT (e.g. a full disk) may have rolled back already; keep its error.
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


def _execute_one(db: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
    """One statement in its own transaction; returns the rows it changed."""
    return db.execute(sql, params).rowcount


def _execute_returning(db: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Any:
    """One statement ``RETURNING`` one value, in its own transaction: the first row's value,
    or None when it changed no row."""
    rows = db.execute(sql, params).fetchall()  # read to the end: the statement completes
    return rows[0][0] if rows else None


# Each step brings a database of the version before it up to the next one.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "ALTER TABLE attempts ADD COLUMN queued_at REAL",
        "ALTER TABLE attempts ADD COLUMN waited_for TEXT",
    ),
    2: ("ALTER TABLE orchestrations ADD COLUMN lease_until REAL",),
    3: ("ALTER TABLE orchestrations ADD COLUMN owner_process TEXT",),
    4: ("ALTER TABLE orchestrations ADD COLUMN generation INTEGER NOT NULL DEFAULT 0",),
}


async def _prepare(db: aiosqlite.Connection) -> None:
    await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    await db.execute("PRAGMA journal_mode = WAL")
    await db.execute("PRAGMA synchronous = NORMAL")
    await db.execute("PRAGMA foreign_keys = ON")
    cursor = await db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    )
    version = 0
    if await cursor.fetchone():
        cursor = await db.execute("SELECT version FROM schema_version")
        row = await cursor.fetchone()
        version = row[0] if row else 0
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the state database was written by a newer version (schema {version}, this "
            f"version reads {SCHEMA_VERSION}); upgrade multi-task-orchestrator"
        )
    if version == SCHEMA_VERSION:
        return
    await db.execute("BEGIN IMMEDIATE")
    try:
        if version == 0:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                await db.execute(statement)
        else:
            for step in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step]:
                    await db.execute(statement)
        await db.execute("DELETE FROM schema_version")
        await db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        await db.execute("COMMIT")
    except BaseException:
        await db.execute("ROLLBACK")
        raise
