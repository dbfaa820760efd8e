"""The plan of a valid document: its stages, critical path, limits and fan-outs.

The helpers here (``dag_levels``, ``execution_stages``, ``ancestors``) are shared with the
scheduler, so the plan shows the order the scheduler will actually follow. They adapt a list of
tasks to ``engine.dag``'s graph (each task id with its dependencies, in document order; the
first of duplicate ids wins) and leave the algorithms to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from multi_task_orchestrator.engine import dag
from multi_task_orchestrator.engine.document.models import Mode, Orchestration, TaskSpec

# --- the tasks as a graph -----------------------------------------------------------------


def tasks_by_id(tasks: Iterable[TaskSpec]) -> dict[str, TaskSpec]:
    """Tasks by id, in document order; the first of duplicates wins."""
    by_id: dict[str, TaskSpec] = {}
    for task in tasks:
        by_id.setdefault(task.id, task)
    return by_id


def dependency_graph(by_id: Mapping[str, TaskSpec]) -> dict[str, Sequence[str]]:
    """The tasks' dependency graph, as ``engine.dag`` takes it."""
    return {task_id: task.dependencies for task_id, task in by_id.items()}


def dag_levels(tasks: Sequence[TaskSpec]) -> dict[str, int]:
    """Each task's level: 0 without dependencies, else one more than its deepest dependency."""
    return dag.levels(dependency_graph(tasks_by_id(tasks)))


def stage_numbers(tasks: Sequence[TaskSpec]) -> dict[str, int]:
    """Mixed mode: explicit ``stage:`` numbers when any task has one, otherwise the DAG levels.

    A task without a number takes the highest stage of its dependencies, or the lowest stage
    number present when it has none.
    """
    explicit = [task.stage for task in tasks if task.stage is not None]
    if not explicit:
        return dag_levels(tasks)
    by_id = tasks_by_id(tasks)
    given = {task_id: task.stage for task_id, task in by_id.items() if task.stage is not None}
    return dag.stages(dependency_graph(by_id), given, lowest=min(explicit))


def execution_stages(orchestration: Orchestration) -> list[list[str]]:
    """The barriers the scheduler keeps: each stage finishes before the next one starts."""
    ids = list(tasks_by_id(orchestration.tasks))
    match orchestration.mode:
        case Mode.parallel:
            return [ids]
        case Mode.sequential:
            return [[task_id] for task_id in ids]
        case Mode.mixed:
            return dag.group(stage_numbers(orchestration.tasks))
    raise ValueError(f"unknown mode {orchestration.mode!r}")


def ancestors(tasks: Sequence[TaskSpec]) -> dict[str, set[str]]:
    """Each task's transitive dependencies (ids of tasks in ``tasks`` only)."""
    return dag.ancestors(dependency_graph(tasks_by_id(tasks)))


# --- the plan -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """How a valid document will run: stages, the longest chain, limits and fan-outs."""

    mode: str
    task_count: int
    max_concurrent: int
    stages: list[list[str]]
    critical_path: list[str]
    limits: dict[str, dict]
    fan_outs: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "task_count": self.task_count,
            "max_concurrent": self.max_concurrent,
            "stages": [list(stage) for stage in self.stages],
            "critical_path": list(self.critical_path),
            "limits": {
                name: {**pool, "tasks": list(pool["tasks"])} for name, pool in self.limits.items()
            },
            "fan_outs": list(self.fan_outs),
        }

    def describe(self, *, max_stages: int | None = None, max_ids: int | None = None) -> str:
        """The plan as text for people: stages, critical path, limits and fan-outs; with
        limits, at most ``max_stages`` stage lines and ``max_ids`` ids per list, the rest
        counted (e.g. ``… 9,980 more stages``)."""
        tasks = _plural(self.task_count, "task")
        stages = _plural(len(self.stages), "stage")
        pace = "one at a time" if self.mode == "sequential" else f"{self.max_concurrent} at once"
        lines = [f"{tasks} in {stages} ({self.mode}, {pace})"]
        shown = self.stages if max_stages is None else self.stages[:max_stages]
        lines += [
            f"  stage {n}: {_listed(ids, max_ids, ', ')}" for n, ids in enumerate(shown, start=1)
        ]
        if len(shown) < len(self.stages):
            lines.append(f"  … {len(self.stages) - len(shown):,} more stages")
        chain = _listed(self.critical_path, max_ids, " -> ", middle=True)
        lines.append(f"critical path: {chain} ({_plural(len(self.critical_path), 'task')})")
        if self.limits:
            lines.append("limits:")
            for name, pool in self.limits.items():
                caps = []
                if pool["concurrency"] is not None:
                    caps.append(f"{pool['concurrency']} at once")
                if pool["rate"] is not None:
                    caps.append(pool["rate"])
                members = _listed(pool["tasks"], max_ids, ", ") or "no task uses it"
                lines.append(f"  {name} ({', '.join(caps)}): {members}")
        if self.fan_outs:
            fan_outs = _listed(self.fan_outs, max_ids, ", ")
            lines.append(f"fan-out (one child per item): {fan_outs}")
        return "\n".join(lines)


def _listed(ids: Sequence[str], limit: int | None, joiner: str, *, middle: bool = False) -> str:
    """``ids`` joined; past ``limit`` the rest (or, with ``middle``, the middle) counted."""
    if limit is None or len(ids) <= limit:
        return joiner.join(ids)
    if middle:
        half = limit // 2
        left_out = len(ids) - 2 * half
        return joiner.join([*ids[:half], f"… {left_out:,} more …", *ids[-half:]])
    return joiner.join(ids[:limit]) + f" … {len(ids) - limit:,} more"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def make_plan(orchestration: Orchestration) -> Plan:
    """The plan of a valid orchestration."""
    tasks = orchestration.tasks
    chains = dag.chains(dependency_graph(tasks_by_id(tasks)))
    if orchestration.mode is Mode.parallel:
        stages = dag.group({task_id: count - 1 for task_id, (count, _) in chains.items()})
    else:
        stages = execution_stages(orchestration)
    members: dict[str, list[str]] = {name: [] for name in orchestration.limits}
    for task in tasks if members else ():
        for name in dict.fromkeys(task.limit):
            if name in members:
                members[name].append(task.id)
    limits = {
        name: {
            "concurrency": pool.concurrency,
            "rate": str(pool.rate) if pool.rate is not None else None,
            "tasks": members[name],
        }
        for name, pool in orchestration.limits.items()
    }
    return Plan(
        mode=orchestration.mode.value,
        task_count=len(tasks),
        max_concurrent=orchestration.max_concurrent,
        stages=stages,
        critical_path=dag.longest_path(chains),
        limits=limits,
        fan_outs=[task.id for task in tasks if task.for_each is not None],
    )
