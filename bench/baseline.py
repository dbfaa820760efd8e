"""The baselines the engine is measured against: a plain asyncio DAG executor, no persistence."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
