"""The timeline of a run as data: rows of bars for waiting, running and backing off, the chain
of tasks that decided when the run ended, and a time axis.

Pure functions of a ``RunSnapshot``, the attempt rows and each task's dependencies; times are
seconds from the run's start. ``engine.reports.svg`` draws the result. When there are more
rows than fit, fan-out children are collapsed into one row per parent (the largest groups
first) showing how many ran and waited at each moment; if that is still too many, the most
telling tasks keep their own rows and the rest share one summary row.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Literal

from multi_task_orchestrator.engine.state import RunSnapshot, TaskSnapshot, TaskState
from multi_task_orchestrator.engine.store import AttemptRow

MAX_ROWS = 60
# A wait no pool was named for (the task was queued behind others) is drawn from this long on.
MIN_UNNAMED_WAIT = 0.05
# Tick spacings the axis chooses from, in seconds; the smallest giving at most MAX_TICKS ticks.
NICE_STEPS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30,
    60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
)  # fmt: skip
MAX_TICKS = 10
# Top-level tasks in these states keep their rows before retried ones and the longest.
_TELLING_STATES = frozenset({TaskState.failed, TaskState.cancelled, TaskState.running})

SpanKind = Literal["wait", "run", "backoff", "envelope"]
WaitKind = Literal["slot", "rate", "queued"]
RowKind = Literal["task", "group", "others"]


@dataclass(frozen=True, slots=True)
class Span:
    """One stretch of time on a row.

    ``wait``: ready but held back (``wait_kind`` slot, rate or queued; ``reason`` the pool, e.g.
    ``rate limit api (5/s)``). ``run``: an attempt running (``outcome`` succeeded, failed,
    cancelled, interrupted, or None while it runs; ``reason`` its error). ``backoff``: between a
    failed attempt's end and the next attempt becoming ready. ``envelope``: a fan-out parent,
    from expanding to its last child finishing (``outcome`` the parent's state).
    """

    kind: SpanKind
    start: float
    end: float
    attempt: int = 0
    outcome: str | None = None
    wait_kind: WaitKind | None = None
    reason: str | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Band:
    """How many member tasks ran and waited from each point on: ``(time, running, waiting)``."""

    points: tuple[tuple[float, int, int], ...]
    peak_running: int
    peak_waiting: int


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
class BarrierWait:
    """A task that was ready (its dependencies done) but waited for its stage to open: the
    tasks of the stages before it had to finish, and ``held_by`` finished last."""

    task_id: str
    held_by: str
    seconds: float


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


def wait_kind(waited_for: str | None) -> WaitKind:
    """``slot`` for a concurrency cap, ``rate`` for a rate limit, ``queued`` when none named."""
    if waited_for is None:
        return "queued"
    if waited_for.startswith("rate"):
        return "rate"
    return "slot"


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

    ``stages`` are the barriers the run kept (``graph.execution_stages``: in ``mixed`` and
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
        return _task_spans(task, by_task.get(task.task_id, []), origin, end)

    def band_of(members: Iterable[TaskSnapshot]) -> Band:
        rows = (row for task in members for row in by_task.get(task.task_id, ()))
        return _attempts_band(rows, origin, end)

    critical = critical_path(tasks, by_task, dependencies, stages)
    waits = barrier_waits(tasks, by_task, dependencies, stages)
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


# --- one task's spans ------------------------------------------------------------------------


def _task_spans(
    task: TaskSnapshot, rows: list[AttemptRow], origin: float, end: float
) -> tuple[Span, ...]:
    spans: list[Span] = []
    previous: AttemptRow | None = None
    for row in rows:
        if previous is not None and previous.finished_at is not None:
            ready = row.queued_at if row.queued_at is not None else row.started_at
            if ready > previous.finished_at:
                spans.append(
                    Span("backoff", previous.finished_at - origin, ready - origin, row.attempt)
                )
        if row.queued_at is not None and _shows_wait(row):
            spans.append(
                Span(
                    "wait",
                    row.queued_at - origin,
                    row.started_at - origin,
                    row.attempt,
                    wait_kind=wait_kind(row.waited_for),
                    reason=row.waited_for,
                )
            )
        finished = row.finished_at if row.finished_at is not None else end
        spans.append(
            Span(
                "run",
                row.started_at - origin,
                finished - origin,
                row.attempt,
                outcome=row.outcome,
                reason=row.error,
            )
        )
        previous = row
    if not rows and task.started_at is not None:
        finished = task.finished_at if task.finished_at is not None else end
        outcome = task.state.value if task.state.terminal else None
        spans.append(Span("envelope", task.started_at - origin, finished - origin, 0, outcome))
    return tuple(spans)


def _shows_wait(row: AttemptRow) -> bool:
    """Whether the attempt has a wait span: it became ready before it started, and a pool held
    it back or it waited at least MIN_UNNAMED_WAIT."""
    if row.queued_at is None or row.started_at <= row.queued_at:
        return False
    return row.waited_for is not None or row.started_at - row.queued_at >= MIN_UNNAMED_WAIT


# --- the critical path -------------------------------------------------------------------------


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
        current = max(before, key=finish.__getitem__) if before else None
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
) -> list[BarrierWait]:
    """The tasks a stage barrier held after their dependencies were done, in document order:
    each with the task that held the stage and how long it waited (at least MIN_UNNAMED_WAIT)."""
    finish = {task.task_id: _finished(task, attempts.get(task.task_id, ())) for task in tasks}
    holders = _barrier_holders(stages, finish)
    origin = min((t.started_at for t in tasks if t.started_at is not None), default=None)
    waits: list[BarrierWait] = []
    for task in tasks:
        holder = holders.get(task.task_id)
        if holder is None or task.started_at is None or origin is None:
            continue
        deps_done = [finish[d] for d in dependencies.get(task.task_id, ()) if finish.get(d)]
        ready = max([origin, *deps_done])
        opened = finish[holder]
        assert opened is not None
        if holder not in dependencies.get(task.task_id, ()) and opened - ready >= MIN_UNNAMED_WAIT:
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


def concurrency_band(spans: Iterable[Span]) -> Band:
    """How many of ``spans`` ran (``run``) and waited (``wait``) from each change on."""
    run_changes: dict[float, int] = {}
    wait_changes: dict[float, int] = {}
    for span in spans:
        if span.kind == "run":
            _add_change(run_changes, span.start, span.end)
        elif span.kind == "wait":
            _add_change(wait_changes, span.start, span.end)
    return _band(run_changes, wait_changes)


def _attempts_band(rows: Iterable[AttemptRow], origin: float, end: float) -> Band:
    """``concurrency_band`` of the spans ``_task_spans`` makes of ``rows``, without making
    them (the run and wait spans are all a band counts)."""
    run_changes: dict[float, int] = {}
    wait_changes: dict[float, int] = {}
    for row in rows:
        if row.queued_at is not None and _shows_wait(row):
            _add_change(wait_changes, row.queued_at - origin, row.started_at - origin)
        # _add_change inlined: this runs once for each of thousands of attempts.
        start = row.started_at - origin
        stop = (row.finished_at if row.finished_at is not None else end) - origin
        if stop > start:
            run_changes[start] = run_changes.get(start, 0) + 1
            run_changes[stop] = run_changes.get(stop, 0) - 1
    return _band(run_changes, wait_changes)


def _add_change(changes: dict[float, int], start: float, end: float) -> None:
    """Count one span from ``start`` to ``end`` (none if empty) into ``changes``."""
    if end > start:
        changes[start] = changes.get(start, 0) + 1
        changes[end] = changes.get(end, 0) - 1


def _band(run_changes: Mapping[float, int], wait_changes: Mapping[float, int]) -> Band:
    """The band from how the numbers running and waiting change at each moment (a moment where
    spans meet stays, with a change of 0)."""
    running = waiting = peak_running = peak_waiting = 0
    points: list[tuple[float, int, int]] = []
    for moment in sorted(run_changes.keys() | wait_changes.keys()):
        running += run_changes.get(moment, 0)
        waiting += wait_changes.get(moment, 0)
        if running > peak_running:
            peak_running = running
        if waiting > peak_waiting:
            peak_waiting = waiting
        points.append((moment, running, waiting))
    return Band(tuple(points), peak_running, peak_waiting)
