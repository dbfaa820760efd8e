"""The timeline of a run as data: rows of bars for waiting, running and backing off, the chain
of tasks that decided when the run ended, and a time axis.

Pure functions of a ``RunSnapshot``, the attempt rows and each task's dependencies; times are
seconds from the run's start. ``engine.reports.svg`` draws the result. When there are more
rows than fit, fan-out children are collapsed into one row per parent (the largest groups
first) showing how many ran and waited at each moment; if that is still too many, the most
telling tasks keep their own rows and the rest share one summary row. A task's bars come from
``engine.reports.spans``, the chain from ``engine.reports.critical_path``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Literal

from multi_task_orchestrator.engine.reports.critical_path import (
    BarrierWait,
    barrier_waits,
    critical_path,
)
from multi_task_orchestrator.engine.reports.spans import (
    MIN_UNNAMED_WAIT,
    Band,
    Span,
    attempts_band,
    task_spans,
)
from multi_task_orchestrator.engine.state import RunSnapshot, TaskSnapshot, TaskState
from multi_task_orchestrator.engine.store import AttemptRow

MAX_ROWS = 60
# Tick spacings the axis chooses from, in seconds; the smallest giving at most MAX_TICKS ticks.
NICE_STEPS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30,
    60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
)  # fmt: skip
MAX_TICKS = 10
# Top-level tasks in these states keep their rows before retried ones and the longest.
_TELLING_STATES = frozenset({TaskState.failed, TaskState.cancelled, TaskState.running})

RowKind = Literal["task", "group", "others"]


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the picture: a task, a collapsed fan-out (``group``) or the rest (``others``)."""

    key: str
    label: str
    kind: RowKind
    state: str
    depth: int = 0
    spans: tuple[Span, ...] = ()
    critical: bool = False
    attempts: int = 0
    members: int = 1
    counts: Mapping[str, int] = field(default_factory=dict)
    band: Band | None = None


@dataclass(frozen=True, slots=True)
class Timeline:
    """Everything the picture shows; ``origin`` is the epoch time that is 0 on the axis."""

    name: str
    status: str
    origin: float
    duration: float
    ticks: tuple[float, ...]
    rows: tuple[Row, ...]
    critical_path: tuple[str, ...]
    task_count: int
    note: str | None = None
    barrier_waits: tuple[BarrierWait, ...] = ()


def dependencies_of(document: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each task's dependencies from a stored document (``Orchestration.model_dump``)."""
    return {
        str(task["id"]): [str(dep) for dep in task.get("dependencies") or ()]
        for task in document.get("tasks") or ()
        if isinstance(task, Mapping) and "id" in task
    }


def build_timeline(
    snapshot: RunSnapshot,
    attempts: Iterable[AttemptRow],
    dependencies: Mapping[str, Sequence[str]],
    *,
    now: float,
    max_rows: int = MAX_ROWS,
    stages: Sequence[Sequence[str]] = (),
) -> Timeline:
    """The timeline of ``snapshot``; ``now`` ends what is still running (an unfinished run).

    ``stages`` are the barriers the run kept (``document.plan.execution_stages``: in ``mixed`` and
    ``sequential`` mode each stage starts once every task before it ended); each is an edge of
    the critical path, and a task held at one is a ``barrier_waits`` entry."""
    if max_rows < 2:
        raise ValueError(f"max_rows must be at least 2, got {max_rows}")
    tasks = sorted(snapshot.tasks, key=attrgetter("position"))
    by_task: dict[str, list[AttemptRow]] = {}
    for row in sorted(attempts, key=attrgetter("task_id", "attempt")):
        by_task.setdefault(row.task_id, []).append(row)

    origin = _origin(snapshot, by_task)
    end = _end(snapshot, by_task, now)

    def spans_of(task: TaskSnapshot) -> tuple[Span, ...]:
        return task_spans(task, by_task.get(task.task_id, []), origin, end)

    def band_of(members: Iterable[TaskSnapshot]) -> Band:
        rows = (row for task in members for row in by_task.get(task.task_id, ()))
        return attempts_band(rows, origin, end)

    critical = critical_path(tasks, by_task, dependencies, stages)
    waits = barrier_waits(tasks, by_task, dependencies, stages, min_seconds=MIN_UNNAMED_WAIT)
    rows, note = _layout(tasks, spans_of, band_of, set(critical), max_rows)
    duration = max(0.0, end - origin)
    return Timeline(
        name=snapshot.name,
        status=snapshot.status.value,
        origin=origin,
        duration=duration,
        ticks=axis_ticks(duration),
        rows=tuple(rows),
        critical_path=tuple(critical),
        task_count=len(tasks),
        note=note,
        barrier_waits=tuple(waits),
    )


# --- time ----------------------------------------------------------------------------------


def _origin(snapshot: RunSnapshot, by_task: Mapping[str, list[AttemptRow]]) -> float:
    candidates = [snapshot.started_at or snapshot.created_at]
    for rows in by_task.values():
        candidates.extend(
            row.queued_at if row.queued_at is not None else row.started_at for row in rows
        )
    return min(candidates)


def _end(snapshot: RunSnapshot, by_task: Mapping[str, list[AttemptRow]], now: float) -> float:
    candidates = [snapshot.finished_at if snapshot.finished_at is not None else now]
    for task in snapshot.tasks:
        if task.finished_at is not None:
            candidates.append(task.finished_at)
    for rows in by_task.values():
        candidates.extend(row.finished_at for row in rows if row.finished_at is not None)
    return max(candidates)


def axis_ticks(duration: float) -> tuple[float, ...]:
    """Evenly spaced round times from 0 to ``duration``: at most MAX_TICKS + 1 of them."""
    if not math.isfinite(duration) or duration <= 0:
        return (0.0,)
    step = next((s for s in NICE_STEPS if duration / s <= MAX_TICKS), None)
    if step is None:
        step = math.ceil(duration / MAX_TICKS / NICE_STEPS[-1]) * NICE_STEPS[-1]
    count = math.floor(duration / step + 1e-9)
    return tuple(round(index * step, 6) for index in range(count + 1))


def format_tick(seconds: float, step: float) -> str:
    """An axis label: ``0.25s`` or ``12s`` below a minute, ``1m 30s``, ``2h 05m``."""
    if seconds < 60 or step < 1:
        if step >= 1:
            return f"{seconds:.0f}s"
        decimals = max(0, min(3, -math.floor(math.log10(step) + 1e-9)))
        if step in (0.25, 0.025, 0.0025):
            decimals += 1
        return f"{seconds:.{decimals}f}s"
    total = round(seconds)
    if total < 3600:
        minutes, secs = divmod(total, 60)
        return f"{minutes}m" if secs == 0 else f"{minutes}m {secs:02d}s"
    hours, rest = divmod(total, 3600)
    return f"{hours}h" if rest == 0 else f"{hours}h {rest // 60:02d}m"


# --- rows and grouping -----------------------------------------------------------------------


def _layout(
    tasks: Sequence[TaskSnapshot],
    spans_of: Callable[[TaskSnapshot], tuple[Span, ...]],
    band_of: Callable[[Sequence[TaskSnapshot]], Band],
    critical: set[str],
    max_rows: int,
) -> tuple[list[Row], str | None]:
    top = [task for task in tasks if task.parent_id is None]
    children: dict[str, list[TaskSnapshot]] = {}
    for task in tasks:
        if task.parent_id is not None:
            children.setdefault(task.parent_id, []).append(task)

    def task_row(task: TaskSnapshot, depth: int) -> Row:
        return Row(
            key=task.task_id,
            label=task.label,
            kind="task",
            state=task.state.value,
            depth=depth,
            spans=spans_of(task),
            critical=task.task_id in critical,
            attempts=task.attempts,
        )

    collapsed: set[str] = set()
    total = len(tasks)
    for parent_id in sorted(children, key=lambda key: -len(children[key])):
        if total <= max_rows:
            break
        collapsed.add(parent_id)
        total -= len(children[parent_id])

    notes = []
    if collapsed:
        notes.append(
            f"{len(collapsed)} fan-out group{'s' if len(collapsed) != 1 else ''} collapsed "
            "into one row each"
        )

    def block(task: TaskSnapshot) -> list[Row]:
        """A top-level task's rows: its own, then its group's or its children's."""
        rows = [task_row(task, 0)]
        members = children.get(task.task_id, [])
        if task.task_id in collapsed:
            rows.append(_group_row(task, members, band_of(members), critical))
        else:
            rows.extend(task_row(child, 1) for child in members)
        return rows

    # Rows are made only for the tasks that get them: with thousands, most share the last row.
    sizes = {
        task.task_id: 2 if task.task_id in collapsed else 1 + len(children.get(task.task_id, []))
        for task in top
    }
    if sum(sizes.values()) <= max_rows:
        return [row for task in top for row in block(task)], "; ".join(notes) or None

    kept = _most_telling(top, sizes, collapsed, critical, budget=max_rows - 1)
    rows: list[Row] = []
    rest: list[TaskSnapshot] = []
    for task in top:
        if task.task_id in kept:
            rows.extend(block(task))
        else:
            rest.append(task)
            rest.extend(children.get(task.task_id, []))
    rows.append(_others_row(rest, band_of(rest)))
    notes.append(f"{len(rest)} tasks summarised in the last row")
    return rows, "; ".join(notes)


def _most_telling(
    top: Sequence[TaskSnapshot],
    sizes: Mapping[str, int],
    grouped: set[str],
    critical: set[str],
    budget: int,
) -> set[str]:
    """Top-level tasks to keep (each with its ``sizes`` rows): the critical path, then
    failures, retries and collapsed groups (``grouped``), then the longest."""

    def rank(task: TaskSnapshot) -> tuple[int, float, int]:
        if task.task_id in critical:
            tier = 0
        elif task.state in _TELLING_STATES:
            tier = 1
        elif task.attempts > 1 or task.task_id in grouped:
            tier = 2
        else:
            tier = 3
        return (tier, -(task.duration or 0.0), task.position)

    kept: set[str] = set()
    used = 0
    for task in sorted(top, key=rank):
        size = sizes[task.task_id]
        if used + size <= budget:
            kept.add(task.task_id)
            used += size
    return kept


def _counts(tasks: Iterable[TaskSnapshot]) -> dict[str, int]:
    """How many of ``tasks`` are in each state, the states in the order first met."""
    return {state.value: count for state, count in Counter(task.state for task in tasks).items()}


def _group_row(
    parent: TaskSnapshot, members: Sequence[TaskSnapshot], band: Band, critical: set[str]
) -> Row:
    return Row(
        key=f"{parent.task_id}[*]",
        label=f"{parent.label} ×{len(members)}",
        kind="group",
        state=parent.state.value,
        depth=1,
        critical=any(member.task_id in critical for member in members),
        attempts=sum(member.attempts for member in members),
        members=len(members),
        counts=_counts(members),
        band=band,
    )


def _others_row(rest: Sequence[TaskSnapshot], band: Band) -> Row:
    return Row(
        key="*",
        label=f"{len(rest)} other tasks",
        kind="others",
        state="mixed",
        attempts=sum(task.attempts for task in rest),
        members=len(rest),
        counts=_counts(rest),
        band=band,
    )
