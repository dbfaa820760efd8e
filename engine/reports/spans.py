"""A task's stretches of time (waiting, running, backing off) from its attempt rows, and the
band of how many tasks ran and waited at each moment; ``engine.reports.timeline`` lays them out
in rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from multi_task_orchestrator.engine.state import TaskSnapshot
from multi_task_orchestrator.engine.store import AttemptRow

# A wait no pool was named for (the task was queued behind others) is drawn from this long on.
MIN_UNNAMED_WAIT = 0.05

SpanKind = Literal["wait", "run", "backoff", "envelope"]
WaitKind = Literal["slot", "rate", "queued"]


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


def wait_kind(waited_for: str | None) -> WaitKind:
    """``slot`` for a concurrency cap, ``rate`` for a rate limit, ``queued`` when none named."""
    if waited_for is None:
        return "queued"
    if waited_for.startswith("rate"):
        return "rate"
    return "slot"


def task_spans(
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


def attempts_band(rows: Iterable[AttemptRow], origin: float, end: float) -> Band:
    """``concurrency_band`` of the spans ``task_spans`` makes of ``rows``, without making
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
