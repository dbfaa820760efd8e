"""The store's two ways to commit: small batches someone waits for on the event loop, the rest
(and anything another process holds the lock for) on the writer thread."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from multi_task_orchestrator.engine.store import INLINE_COMMIT_ROWS, Store, TaskRow


def task_row(task_id: str, state: str = "queued") -> TaskRow:
    return TaskRow(
        orchestration_id="orch-1",
        task_id=task_id,
        position=0,
        type="delay",
        label=task_id,
        state=state,
    )


def stored_states(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT task_id, state FROM tasks").fetchall())


class ThreadTrips:
    """Counts the writer thread's jobs."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        writes = store._writes
        run = writes.run

        async def counted(*args: Any) -> Any:
            self.count += 1
            return await run(*args)

        monkeypatch.setattr(writes, "run", counted)


@pytest.mark.anyio
async def test_a_small_batch_someone_waits_for_is_committed_without_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await Store.open(tmp_path / "state.db")
    trips = ThreadTrips(store, monkeypatch)
    try:
        store.put_task(task_row("small"))
        await store.flush()
        assert stored_states(tmp_path / "state.db") == {"small": "queued"}
        assert trips.count == 0

        for number in range(INLINE_COMMIT_ROWS + 1):  # one row too many: the thread commits
            store.put_task(task_row(f"t{number}"))
        await store.flush()
        assert len(stored_states(tmp_path / "state.db")) == INLINE_COMMIT_ROWS + 2
        assert trips.count == 1
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_a_lock_held_by_another_process_is_waited_for_off_the_event_loop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    store = await Store.open(path)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        store.put_task(task_row("waits", "succeeded"))
        flushing = asyncio.create_task(store.flush())
        ticks = 0
        while ticks < 5:  # the event loop keeps running while the commit waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert not flushing.done()
        await asyncio.to_thread(other.execute, "COMMIT")
        await asyncio.wait_for(flushing, timeout=10)
        assert stored_states(path) == {"waits": "succeeded"}
    finally:
        other.close()
        await store.aclose()


@pytest.mark.anyio
async def test_commit_now_commits_a_small_batch_at_once_or_leaves_it_to_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a finished task's dependents wait for: a small batch is committed before
    ``commit_now`` returns (no trip to the writer, no turn of the event loop); a large one, or
    one whose lock another process holds, is left queued for ``flush``, nothing lost."""
    path = tmp_path / "state.db"
    store = await Store.open(path)
    trips = ThreadTrips(store, monkeypatch)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        assert store.commit_now()  # nothing queued: nothing to wait for
        store.put_task_later("orch-1", "a", lambda: task_row("a", "succeeded"))
        assert store.commit_now()
        assert stored_states(path) == {"a": "succeeded"}

        for number in range(INLINE_COMMIT_ROWS + 1):
            store.put_task(task_row(f"t{number}"))
        assert not store.commit_now()  # too many rows for the event loop
        await store.flush()
        assert len(stored_states(path)) == INLINE_COMMIT_ROWS + 2
        assert trips.count == 1

        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        store.put_task(task_row("b", "succeeded"))
        assert not store.commit_now()  # not waited for here: left queued
        flushing = asyncio.create_task(store.flush())
        await asyncio.sleep(0.05)
        await asyncio.to_thread(other.execute, "COMMIT")
        await asyncio.wait_for(flushing, timeout=10)
        assert stored_states(path)["b"] == "succeeded"
    finally:
        other.close()
        await store.aclose()


@pytest.mark.anyio
async def test_commit_now_leaves_out_a_run_another_process_took_over(tmp_path: Path) -> None:
    """Fenced as the writer's commits are: rows of a run whose stored generation moved on are
    not written, and the store is told (``on_fenced``)."""
    path = tmp_path / "state.db"
    store = await Store.open(path)
    fenced: list[set[str]] = []
    store.on_fenced = fenced.append
    try:
        with sqlite3.connect(path) as db:
            db.execute(
                "INSERT INTO orchestrations (id, name, status, document, created_at, generation)"
                " VALUES ('orch-1', 'n', 'running', '{}', 0, 2)"
            )
        store.hold("orch-1", 1)  # this store claimed generation 1; another took it to 2
        store.put_task(task_row("late", "succeeded"))
        assert store.commit_now()
        assert stored_states(path) == {}
        assert fenced == [{"orch-1"}]
    finally:
        await store.aclose()
