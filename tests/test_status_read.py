"""The status read (``Engine.status``) against the whole snapshot it stands in for.

A status shows at most a few dozen rows of a run that may have thousands of tasks, so
``Engine.status`` counts every task's state but builds only the rows a status shows. Each test
here runs real orchestrations on a real SQLite file and checks that what the status read gives
— counts, done, total, percent, the rows listed, the rows omitted and the display — is exactly
what the whole snapshot gives, for runs read back from the database and for runs in memory,
with fan-out children, failures, skips, retries and queued tasks.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from multi_task_orchestrator.engine.engine import Engine
from multi_task_orchestrator.engine.reports.display import render_status
from multi_task_orchestrator.engine.state import RunSnapshot, RunStatus, TaskSnapshot, TaskState
from multi_task_orchestrator.server.app import create_server
from multi_task_orchestrator.server.settings import Settings
from multi_task_orchestrator.tools.views import (
    _ROW_PRIORITY,
    STATUS_DISPLAY_ROWS,
    orchestration_status,
    snapshot_for_status,
)

pytestmark = pytest.mark.anyio

NOW = 2_000_000_000.0  # the moment every display here is drawn at


def delay(task_id: str, seconds: float = 0, **fields: Any) -> dict[str, Any]:
    """A ``delay`` task; ``config`` in ``fields`` adds to its config, the rest to the task."""
    config = {"seconds": seconds, **fields.pop("config", {})}
    return {"id": task_id, "type": "delay", "config": config, **fields}


def fan_out(task_id: str, failing: set[int], count: int, **fields: Any) -> dict[str, Any]:
    """A fan-out over ``count`` items; the items in ``failing`` fail."""
    return {
        "id": task_id,
        "type": "delay",
        "for_each": [{"n": n, "fail": "error" if n in failing else None} for n in range(count)],
        "config": {"seconds": fields.pop("seconds", 0), "fail": "${item.fail}"},
        **fields,
    }


QUICK_RETRY = {"max_attempts": 2, "initial": 0.01, "jitter": False}

# Every end a task can come to: succeeded, failed after retries, skipped behind a failure,
# fan-out children that fail under a parent that succeeds (allow_partial) or fails, and many
# plain tasks before and after them.
FINISHED = {
    "name": "Finished",
    "tasks": [
        *(delay(f"early{n:02}") for n in range(25)),
        delay("bad", config={"fail": "network", "message": "refused"}, retry=QUICK_RETRY),
        delay("after_bad", dependencies=["bad"]),
        delay("after_after", dependencies=["after_bad"]),
        fan_out("partial", {1, 3, 5, 6, 7, 8}, 10, allow_partial=True),
        fan_out("whole", {2}, 6),
        delay("after_whole", dependencies=["whole"]),
        *(delay(f"late{n:02}") for n in range(20)),
    ],
}
FINISHED_TOTAL = 25 + 3 + 11 + 7 + 1 + 20

# A run caught in every state at once: long tasks hold the slots (running), tasks behind them
# wait for a slot (queued) or for a dependency (pending), one task waits a minute for its next
# attempt (retrying), and a fan-out runs two children while the rest of them queue.
LIVE = {
    "name": "Live",
    "max_concurrent": 6,
    "tasks": [
        *(delay(f"quick{n:02}") for n in range(20)),
        delay("bad", config={"fail": "network"}),
        delay("skip_me", dependencies=["bad"]),
        delay(
            "flaky",
            config={"fail_attempts": 5},
            retry={"max_attempts": 3, "initial": 60, "jitter": False},
        ),
        *(delay(f"slow{n}", 60) for n in range(5)),
        fan_out("fan", set(), 6, seconds=60, max_concurrent=2),
        delay("after_slow", dependencies=["slow0"]),
        *(delay(f"tail{n:02}", 60) for n in range(12)),
    ],
}
LIVE_QUICK = 20  # tasks that succeed at once


@contextmanager
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``time.time()`` stands still at NOW (for code that reads the clock itself)."""
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: NOW)
        yield


def listed(snapshot: RunSnapshot, rows: int) -> list[str]:
    """The ids of the first ``rows`` tasks in the order the status tool lists them by."""
    ranked = sorted(snapshot.tasks, key=lambda t: (_ROW_PRIORITY[t.state], t.position))
    return [task.task_id for task in ranked[:rows]]


def rows_by_id(snapshot: RunSnapshot) -> dict[str, TaskSnapshot]:
    return {task.task_id: task for task in snapshot.tasks}


async def check_status_read(
    engine: Engine, run_id: str, display_rows: int, top: int
) -> RunSnapshot:
    """Read the run both ways at one moment and check that the status read shows what the
    whole snapshot shows; return the status read."""
    full = await engine.snapshot(run_id)
    fast = await engine.status(run_id, display_rows=display_rows, top=top, rank=_ROW_PRIORITY)
    assert fast.counts() == full.counts()
    assert (fast.done, fast.total, fast.percent) == (full.done, len(full.tasks), full.percent)
    assert (fast.id, fast.status, fast.finished_at) == (full.id, full.status, full.finished_at)
    whole = rows_by_id(full)
    for task in fast.tasks:  # each row read is the task as the whole snapshot has it
        assert task == whole[task.task_id]
    if top:
        assert listed(fast, top) == listed(full, top)
    shown = render_status(fast, now=NOW, max_rows=display_rows)
    assert shown == render_status(full, now=NOW, max_rows=display_rows)
    if len(full.tasks) <= max(display_rows, top) or not fast.partial:
        assert fast.task_counts is None
        assert fast.tasks == full.tasks
    return fast


SIZES = list(itertools.product([1, 2, 3, 5, 8, 30], [0, 1, 7, 25]))


async def test_a_finished_run_read_from_the_database_shows_what_its_snapshot_shows(
    engine: Engine,
) -> None:
    run_id = await engine.submit(FINISHED)
    await engine.wait(run_id, 30)
    assert run_id not in engine.runs  # read back from the database
    full = await engine.snapshot(run_id)
    assert len(full.tasks) == FINISHED_TOTAL
    assert full.counts() == {
        **{state.value: 0 for state in TaskState},
        "succeeded": 25 + 1 + 4 + 5 + 20,  # `partial` and 4 of its items, 5 of `whole`'s
        "failed": 1 + 6 + 2,  # bad; 6 items of `partial`; `whole` and its failing item
        "skipped": 3,
    }
    for display_rows, top in SIZES:
        await check_status_read(engine, run_id, display_rows, top)
    fast = await check_status_read(engine, run_id, display_rows=3, top=7)
    assert len(fast.tasks) < FINISHED_TOTAL // 2  # what is shown, not the whole run


async def test_a_small_run_comes_whole(engine: Engine) -> None:
    run_id = await engine.submit(FINISHED)
    await engine.wait(run_id, 30)
    for display_rows, top in [(FINISHED_TOTAL, 0), (5, FINISHED_TOTAL), (100, 200)]:
        fast = await check_status_read(engine, run_id, display_rows, top)
        assert fast.task_counts is None


async def test_the_display_skips_children_whose_parent_does_not_fit(engine: Engine) -> None:
    # Failed items rank before their succeeded parent: with one row left, an item and its
    # parent do not fit, and the display reads on (page after page) for a task that does.
    document = {
        "tasks": [
            delay("first_bad", config={"fail": "error"}),
            fan_out("items", set(range(40)), 40, allow_partial=True),
            *(delay(f"t{n:02}") for n in range(10)),
        ]
    }
    run_id = await engine.submit(document)
    await engine.wait(run_id, 30)
    fast = await check_status_read(engine, run_id, display_rows=3, top=0)
    rows = render_status(fast, now=NOW, max_rows=3).splitlines()[2:]
    assert len(rows) == 3
    assert rows[0].startswith("├─ first_bad: ✗ Failed")
    assert rows[1].startswith("├─ items: ✓ Complete")
    assert rows[2] == "└─ … and 50 more (50 done)"
    for display_rows, top in SIZES:
        await check_status_read(engine, run_id, display_rows, top)


async def live_run(engine: Engine) -> str:
    """Start LIVE and return its id once every quick task has ended and the rest stand still."""
    run_id = await engine.submit(LIVE)
    with anyio.fail_after(20):
        while True:
            counts = (await engine.status(run_id, display_rows=1)).counts()
            settled = counts["succeeded"] == LIVE_QUICK and counts["retrying"] == 1
            if settled and counts["skipped"] == 1 and counts["queued"] >= 4:
                return run_id
            await anyio.sleep(0.02)


async def test_a_run_in_memory_shows_what_its_snapshot_shows(engine: Engine) -> None:
    run_id = await live_run(engine)
    assert run_id in engine.runs
    full = await engine.snapshot(run_id)
    states = {task.state for task in full.tasks}
    assert states == set(TaskState) - {TaskState.cancelled}
    assert any(task.parent_id and task.state == TaskState.running for task in full.tasks)
    assert any(task.waiting_for for task in full.tasks)
    for display_rows, top in SIZES:
        await check_status_read(engine, run_id, display_rows, top)
    await engine.cancel(run_id)
    await engine.wait(run_id, 10)
    assert run_id not in engine.runs
    for display_rows, top in SIZES:  # and the cancelled run, read back from the database
        fast = await check_status_read(engine, run_id, display_rows, top)
        assert fast.status == RunStatus.cancelled


async def test_the_status_tool_view_is_unchanged(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    finished = await engine.submit(FINISHED)
    await engine.wait(finished, 30)
    live = await live_run(engine)
    for run_id, max_rows in itertools.product([finished, live], [1, 10, 200]):
        full = await engine.snapshot(run_id)
        fast = await snapshot_for_status(engine, run_id, max_rows=max_rows)
        with frozen_clock(monkeypatch):
            expected = orchestration_status(full, max_rows=max_rows)
            got = orchestration_status(fast, max_rows=max_rows)
        assert got == expected
        assert got.total == len(full.tasks)
        assert got.tasks_omitted == max(0, len(full.tasks) - max_rows)
        assert len(got.display.splitlines()) <= 2 + STATUS_DISPLAY_ROWS
    await engine.cancel(live)
    await engine.wait(live, 10)


def test_a_partial_snapshot_counts_the_whole_run() -> None:
    task = TaskSnapshot(task_id="a", label="a", type="delay", state="failed", position=0)
    snapshot = RunSnapshot(
        id="orch-1",
        name="n",
        status="running",
        created_at=0,
        tasks=[task],
        task_counts={"failed": 1, "succeeded": 6, "running": 3},
    )
    assert snapshot.partial
    assert (snapshot.total, snapshot.done, snapshot.percent) == (10, 7, 70.0)
    assert snapshot.counts() == {
        **{state.value: 0 for state in TaskState},
        "failed": 1,
        "succeeded": 6,
        "running": 3,
    }
    whole = snapshot.model_copy(update={"task_counts": None})
    assert not whole.partial
    assert (whole.total, whole.done, whole.percent) == (1, 1, 100.0)


async def test_get_status_and_wait_through_mcp_match_the_whole_snapshot(home: Path) -> None:
    document = {
        "name": "Big",
        "tasks": [
            *(delay(f"t{n:03}") for n in range(230)),
            delay("bad", config={"fail": "network"}),
            delay("after_bad", dependencies=["bad"]),
            fan_out("fan", {0, 4}, 8, allow_partial=True),
        ],
    }
    settings = Settings(home=home)
    async with Client(create_server(settings)) as client:
        submitted = await client.call_tool("submit_orchestration", {"spec": document})
        run_id = submitted.structured_content["id"]
        waited = None
        with anyio.fail_after(30):
            while waited is None or not waited["finished"]:
                result = await client.call_tool(
                    "wait_for_orchestration", {"id": run_id, "timeout_seconds": 10}
                )
                waited = result.structured_content
        status = (await client.call_tool("get_status", {"id": run_id})).structured_content
    async with Client(create_server(settings)) as client:  # a new server reads the database
        stored = (await client.call_tool("get_status", {"id": run_id})).structured_content
    async with await Engine.open(settings.db_path, settings.runs_dir, resume=False) as engine:
        full = await engine.snapshot(run_id)
    expected = orchestration_status(full, max_rows=30).model_dump(mode="json")
    assert stored == expected
    assert (stored["total"], stored["tasks_omitted"], len(stored["tasks"])) == (241, 211, 30)
    assert stored["counts"] == {"succeeded": 237, "failed": 3, "skipped": 1}
    assert stored["percent"] == 100.0
    assert status == waited == expected
