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
