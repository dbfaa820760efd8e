"""The baselines the engine is measured against: a plain asyncio DAG executor with no
persistence, and the same executor writing the rows the engine writes, with group commit."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

Work = Callable[[dict[str, Any]], Awaitable[Any]]  # receives the outputs of its dependencies


async def run_dag(
    tasks: Mapping[str, tuple[Sequence[str], Work]], *, max_concurrent: int | None = None
) -> dict[str, Any]:
    """Run ``{id: (dependencies, work)}``: each task starts once its dependencies are done.

    The least an executor can do: dependency counters, a semaphore, outputs kept in a dict.
    """
    outputs: dict[str, Any] = {}
    waiting = {task_id: len(deps) for task_id, (deps, _) in tasks.items()}
    dependents: dict[str, list[str]] = {task_id: [] for task_id in tasks}
    for task_id, (deps, _) in tasks.items():
        for dep in deps:
            dependents[dep].append(task_id)
    slots = asyncio.Semaphore(max_concurrent or len(tasks) or 1)
    done = asyncio.Event()
    remaining = len(tasks)
    running: set[asyncio.Task[None]] = set()

    async def execute(task_id: str) -> None:
        nonlocal remaining
        deps, work = tasks[task_id]
        async with slots:
            outputs[task_id] = await work({dep: outputs[dep] for dep in deps})
        remaining -= 1
        for child in dependents[task_id]:
            waiting[child] -= 1
            if waiting[child] == 0:
                launch(child)
        if remaining == 0:
            done.set()

    def launch(task_id: str) -> None:
        task = asyncio.create_task(execute(task_id))
        running.add(task)
        task.add_done_callback(running.discard)

    for task_id, count in waiting.items():
        if count == 0:
            launch(task_id)
    if tasks:
        await done.wait()
    return outputs


_TABLES = """
CREATE TABLE tasks (run TEXT, task TEXT, state TEXT, output TEXT, PRIMARY KEY (run, task))
    WITHOUT ROWID;
CREATE TABLE attempts (run TEXT, task TEXT, attempt INTEGER, started REAL, finished REAL,
    outcome TEXT, PRIMARY KEY (run, task, attempt)) WITHOUT ROWID;
CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, run TEXT, task TEXT, ts REAL,
    kind TEXT, message TEXT);
CREATE INDEX events_by_run ON events (run, seq);
"""


async def run_dag_persisted(
    tasks: Mapping[str, tuple[Sequence[str], Work]], database: Path
) -> dict[str, Any]:
    """``run_dag`` that also keeps what the engine keeps, the least way it can be kept: a row
    per task (written when queued and when done), an attempt row and two events per task, all
    in SQLite (WAL, synchronous=NORMAL), committed in groups on a writer thread; a task's
    dependents start only once its row is committed.
    """
    thread = ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()
    db = await loop.run_in_executor(
        thread, lambda: sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    )
    await loop.run_in_executor(
        thread, db.executescript, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;" + _TABLES
    )
    rows: dict[str, tuple[Any, ...]] = {}
    attempts: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    committed: list[tuple[str, asyncio.Future[None]]] = []
    wakeup = asyncio.Event()

    def commit(batch: tuple[list[Any], list[Any], list[Any]]) -> None:
        db.execute("BEGIN")
        db.executemany("INSERT OR REPLACE INTO tasks VALUES (?,?,?,?)", batch[0])
        db.executemany("INSERT OR REPLACE INTO attempts VALUES (?,?,?,?,?,?)", batch[1])
        db.executemany(
            "INSERT INTO events (run, task, ts, kind, message) VALUES (?,?,?,?,?)", batch[2]
        )
        db.execute("COMMIT")

    async def writer() -> None:
        nonlocal rows, attempts, events, committed
        while True:
            await wakeup.wait()
            wakeup.clear()
            batch = (list(rows.values()), attempts, events)
            waiting = committed
            rows, attempts, events, committed = {}, [], [], []
            await loop.run_in_executor(thread, commit, batch)
            for _, done in waiting:
                done.set_result(None)

    async def work_persisted(task_id: str, work: Work, inputs: dict[str, Any]) -> Any:
        started = time.time()
        rows[task_id] = ("run", task_id, "running", None)
        events.append(("run", task_id, started, "started", "attempt 1/1"))
        output = await work(inputs)
        finished = time.time()
        rows[task_id] = ("run", task_id, "succeeded", json.dumps(output))
        attempts.append(("run", task_id, 1, started, finished, "succeeded"))
        events.append(("run", task_id, finished, "succeeded", "after 1 attempt(s)"))
        done = loop.create_future()
        committed.append((task_id, done))
        wakeup.set()
        await done
        return output

    for task_id in tasks:
        rows[task_id] = ("run", task_id, "queued", None)
    writing = asyncio.create_task(writer())
    persisted = {
        task_id: (deps, _bind(work_persisted, task_id, work))
        for task_id, (deps, work) in tasks.items()
    }
    try:
        return await run_dag(persisted)
    finally:
        writing.cancel()
        await loop.run_in_executor(thread, db.close)
        thread.shutdown()


def _bind(persisted: Callable[..., Awaitable[Any]], task_id: str, work: Work) -> Work:
    async def bound(inputs: dict[str, Any]) -> Any:
        return await persisted(task_id, work, inputs)

    return bound


async def noop(_: dict[str, Any]) -> Any:
    await asyncio.sleep(0)
    return {"slept": 0.0}


async def pass_on(inputs: dict[str, Any]) -> Any:
    await asyncio.sleep(0)
    return next(iter(inputs.values()), 0)


def sleeper(seconds: float) -> Work:
    async def work(_: dict[str, Any]) -> Any:
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    return work
