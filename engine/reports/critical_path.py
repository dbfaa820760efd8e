"""The chain of tasks that decided when a run ended (its critical path, as it ran), and the
tasks a stage barrier held after their dependencies were done. Pure functions of the tasks,
their attempt rows, their dependencies and the run's stages; ``engine.reports.timeline`` marks
them on the picture."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from multi_task_orchestrator.engine.state import TaskSnapshot, TaskState
from multi_task_orchestrator.engine.store import AttemptRow


@dataclass(frozen=True, slots=True)
class BarrierWait:
    """A task that was ready (its dependencies done) but waited for its stage to open: the
    tasks of the stages before it had to finish, and ``held_by`` finished last."""

    task_id: str
    held_by: str
    seconds: float


def critical_path(
    tasks: Sequence[TaskSnapshot],
    attempts: Mapping[str, Sequence[AttemptRow]],
    dependencies: Mapping[str, Sequence[str]],
    stages: Sequence[Sequence[str]] = (),
) -> list[str]:
    """The chain of tasks that decided when the run ended, first to last.

    From the top-level task that finished last, back through whichever of its dependencies and
    its stage barrier's holder (the task of an earlier stage that finished last) finished last,
    until a task with neither. A fan-out parent on the chain is followed by its child that
    finished last (the one the parent waited for).
    """
    finish = {task.task_id: _finished(task, attempts.get(task.task_id, ())) for task in tasks}
    top = [task for task in tasks if task.parent_id is None and finish[task.task_id] is not None]
    if not top:
        return []
    holders = _barrier_holders(stages, finish)
    current: str | None = max(top, key=lambda task: (finish[task.task_id], -task.position)).task_id
    chain: list[str] = []
    seen: set[str] = set()
    while current is not None and current not in seen:
        chain.append(current)
        seen.add(current)
        before = [dep for dep in dependencies.get(current, ()) if finish.get(dep) is not None]
        holder = holders.get(current)
        if holder is not None:
            before.append(holder)
        current = max(before, key=lambda dep: finish[dep] or 0.0) if before else None
    chain.reverse()

    children: dict[str, list[TaskSnapshot]] = {}
    for task in tasks:
        if task.parent_id is not None and finish[task.task_id] is not None:
            children.setdefault(task.parent_id, []).append(task)
    path: list[str] = []
    for task_id in chain:
        path.append(task_id)
        if children.get(task_id):
            last = max(
                children[task_id], key=lambda child: (finish[child.task_id], -child.position)
            )
            path.append(last.task_id)
    return path


def barrier_waits(
    tasks: Sequence[TaskSnapshot],
    attempts: Mapping[str, Sequence[AttemptRow]],
    dependencies: Mapping[str, Sequence[str]],
    stages: Sequence[Sequence[str]],
    *,
    min_seconds: float,
) -> list[BarrierWait]:
    """The tasks a stage barrier held after their dependencies were done, in document order:
    each with the task that held the stage and how long it waited (at least ``min_seconds``)."""
    finish = {task.task_id: _finished(task, attempts.get(task.task_id, ())) for task in tasks}
    holders = _barrier_holders(stages, finish)
    origin = min((t.started_at for t in tasks if t.started_at is not None), default=None)
    waits: list[BarrierWait] = []
    for task in tasks:
        holder = holders.get(task.task_id)
        if holder is None or task.started_at is None or origin is None:
            continue
        deps_done = [done for d in dependencies.get(task.task_id, ()) if (done := finish.get(d))]
        ready = max([origin, *deps_done])
        opened = finish[holder]
        assert opened is not None
        if holder not in dependencies.get(task.task_id, ()) and opened - ready >= min_seconds:
            waits.append(BarrierWait(task.task_id, holder, round(opened - ready, 3)))
    return waits


def _barrier_holders(
    stages: Sequence[Sequence[str]], finish: Mapping[str, float | None]
) -> dict[str, str]:
    """For each task of a stage after the first: the task of the stages before it that
    finished last (the one its stage waited for)."""
    holders: dict[str, str] = {}
    last: str | None = None
    for stage in stages:
        if last is not None:
            holders.update(dict.fromkeys(stage, last))
        for task_id in stage:
            ended = finish.get(task_id)
            if ended is not None and (last is None or ended > (finish[last] or 0.0)):
                last = task_id
    return holders


def _finished(task: TaskSnapshot, rows: Sequence[AttemptRow]) -> float | None:
    if task.finished_at is not None and task.state is not TaskState.skipped:
        return task.finished_at
    ends = [row.finished_at for row in rows if row.finished_at is not None]
    return max(ends) if ends else None
