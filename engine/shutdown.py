"""Stopping the runs of a process that shuts down: running tasks are given a grace period to
finish, the rest are interrupted, and each run still here is recorded interrupted, so that the
next start (of any process) resumes it and runs those tasks again."""

from __future__ import annotations

import asyncio
import time

from multi_task_orchestrator.engine.run import Run
from multi_task_orchestrator.engine.store import Store


async def interrupt_runs(runs: dict[str, Run], store: Store, grace: float) -> list[str]:
    """Give the tasks of ``runs`` ``grace`` seconds to finish, interrupt the rest and record
    each run interrupted (not yet committed); return the ids of those runs."""
    await _let_running_finish(runs, grace)
    workers = [worker for run in runs.values() for worker in run.workers()]
    for worker in workers:
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    await _let_bookkeeping_end(runs)
    interrupted = list(runs)
    for run_id in interrupted:
        store.add_event(
            run_id,
            None,
            "interrupted",
            "the process stopped; unfinished tasks run again when it is resumed",
            ts=time.time(),
            level="warning",
        )
    return interrupted


async def _let_running_finish(runs: dict[str, Run], grace: float) -> None:
    """Wait up to ``grace`` seconds for running tasks (and their commits) to end."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        busy = any(run.busy for run in runs.values())
        if not busy:
            return
        await asyncio.sleep(0.05)


async def _let_bookkeeping_end(runs: dict[str, Run]) -> None:
    """Wait for the runs' commits and ends under way, including those that the ones awaited
    start (a commit that ends a run's last task begins its end): the store closes next, and an
    end still writing its files then would read a closed database."""
    while True:
        background = [
            task
            for run in list(runs.values())
            for task in run.background_tasks()
            if not task.done()
        ]
        if not background:
            return
        await asyncio.gather(*background, return_exceptions=True)
