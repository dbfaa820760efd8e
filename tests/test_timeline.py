"""The timeline data: spans, wait reasons, backoff gaps, the critical path, grouping and the axis.

One real run (a retry and a rate-limit wait) checked against its own attempt rows, and pure
cases built by hand for the critical path, grouping at 500 tasks and the tick marks.
"""

from __future__ import annotations

from typing import Any

import pytest

from multi_task_orchestrator.engine.engine import Engine
from multi_task_orchestrator.engine.reports.critical_path import critical_path
from multi_task_orchestrator.engine.reports.spans import (
    MIN_UNNAMED_WAIT,
    Span,
    concurrency_band,
    wait_kind,
)
from multi_task_orchestrator.engine.reports.svg import render_svg
from multi_task_orchestrator.engine.reports.timeline import (
    axis_ticks,
    build_timeline,
    dependencies_of,
    format_tick,
)
from multi_task_orchestrator.engine.state import RunSnapshot, RunStatus, TaskSnapshot, TaskState
from multi_task_orchestrator.engine.store import AttemptRow

pytestmark = pytest.mark.anyio

RATE_REASON = "rate limit api (5/s)"

DOCUMENT: dict[str, Any] = {
    "name": "retry and rate",
    "max_concurrent": 10,
    "limits": {"api": {"rate": "5/s"}},
    "tasks": [
        {"id": "call_1", "type": "delay", "limit": "api", "config": {"seconds": 0.02}},
        {"id": "call_2", "type": "delay", "limit": "api", "config": {"seconds": 0.02}},
        {"id": "call_3", "type": "delay", "limit": "api", "config": {"seconds": 0.02}},
        {
            "id": "flaky",
            "type": "delay",
            "config": {"seconds": 0.02, "fail_attempts": 1},
            "retry": {"max_attempts": 2, "initial": 0.2},
        },
        {"id": "after", "type": "delay", "dependencies": ["flaky"], "config": {"seconds": 0.6}},
    ],
}


async def test_timeline_of_a_real_run_with_a_retry_and_a_rate_limit_wait(engine: Engine) -> None:
    run_id = await engine.submit(engine.validate(DOCUMENT).raise_for_errors())
    snapshot = await engine.wait(run_id, timeout=10)
    assert snapshot.status is RunStatus.succeeded
    await engine.store.flush()
    attempts = await engine.store.load_attempts(run_id)
    row = await engine.store.get_orchestration(run_id)
    assert row is not None
    dependencies = dependencies_of(row.document)
    assert dependencies == {
        "call_1": [],
        "call_2": [],
        "call_3": [],
        "flaky": [],
        "after": ["flaky"],
    }

    timeline = build_timeline(snapshot, attempts, dependencies, now=snapshot.finished_at or 0)

    assert [r.key for r in timeline.rows] == ["call_1", "call_2", "call_3", "flaky", "after"]
    assert timeline.note is None
    assert timeline.task_count == 5
    assert timeline.critical_path == ("flaky", "after")
    assert [r.key for r in timeline.rows if r.critical] == ["flaky", "after"]
    origin = timeline.origin
    assert origin == min(
        [snapshot.started_at or 0] + [a.queued_at or a.started_at for a in attempts]
    )
    by_key = {r.key: r for r in timeline.rows}
    attempt = {(a.task_id, a.attempt): a for a in attempts}

    # the rate limit spaces starts 0.2 s apart: two of the three calls waited for it, named
    rate_waits = {}
    for key in ("call_1", "call_2", "call_3"):
        a = attempt[(key, 1)]
        run = Span("run", a.started_at - origin, a.finished_at - origin, 1, "succeeded")
        spans = by_key[key].spans
        assert spans[-1] == run
        if a.waited_for is not None:
            assert a.waited_for == RATE_REASON
            wait = Span(
                "wait", a.queued_at - origin, a.started_at - origin, 1, None, "rate", RATE_REASON
            )
            assert spans == (wait, run)
            rate_waits[key] = wait.duration
        elif a.started_at - a.queued_at >= MIN_UNNAMED_WAIT:  # a slow dispatch, drawn as queued
            queued = Span("wait", a.queued_at - origin, a.started_at - origin, 1, None, "queued")
            assert spans == (queued, run)
        else:
            assert spans == (run,)
    assert len(rate_waits) == 2
    assert sorted(rate_waits.values())[-1] >= 0.3  # the last of three waited two intervals

    # the retry: failed run, backoff until the next attempt was ready, then the successful run
    first, second = attempt[("flaky", 1)], attempt[("flaky", 2)]
    assert (first.outcome, second.outcome) == ("failed", "succeeded")
    assert by_key["flaky"].attempts == 2
    flaky = by_key["flaky"].spans
    assert [s.kind for s in flaky] == ["run", "backoff", "run"]
    assert flaky[0] == Span(
        "run", first.started_at - origin, first.finished_at - origin, 1, "failed",
        reason=first.error,
    )  # fmt: skip
    assert flaky[1] == Span("backoff", first.finished_at - origin, second.queued_at - origin, 2)
    assert flaky[1].duration >= 0.15  # 0.2 s with at most 25% jitter
    assert flaky[2].outcome == "succeeded"

    after = by_key["after"].spans
    assert [s.kind for s in after] == ["run"]
    assert timeline.duration == pytest.approx(
        max(snapshot.finished_at or 0, *(a.finished_at or 0 for a in attempts)) - origin
    )


# --- pure cases ------------------------------------------------------------------------------


def _task(task_id: str, position: int, state: str = "succeeded", **fields: Any) -> TaskSnapshot:
    return TaskSnapshot(
        task_id=task_id, label=task_id, type="delay", state=TaskState(state), position=position,
        **fields,
    )  # fmt: skip


def _attempt(task_id: str, start: float, end: float | None, **fields: Any) -> AttemptRow:
    return AttemptRow("o", task_id, fields.pop("attempt", 1), start, end, "succeeded", **fields)


def _snapshot(tasks: list[TaskSnapshot], finished: float | None = 10.0) -> RunSnapshot:
    return RunSnapshot(
        id="o", name="made by hand", status=RunStatus.succeeded, created_at=0.0,
        started_at=0.0, finished_at=finished, tasks=tasks,
    )  # fmt: skip


def test_critical_path_follows_the_dependency_that_finished_last_into_fan_out() -> None:
    tasks = [
        _task("a", 0, finished_at=1.0),
        _task("b", 1, finished_at=3.0),
        _task("each", 2, started_at=3.0, finished_at=6.0),
        _task("each[0]", 3, parent_id="each", finished_at=5.0),
        _task("each[1]", 4, parent_id="each", finished_at=6.0),
        _task("side", 5, finished_at=2.0),
        _task("end", 6, finished_at=8.0),
    ]
    attempts = {
        "a": [_attempt("a", 0, 1.0)],
        "b": [_attempt("b", 1.0, 3.0)],
    }
    dependencies = {"b": ["a"], "each": ["b", "side"], "end": ["each", "side"]}
    assert critical_path(tasks, attempts, dependencies) == ["a", "b", "each", "each[1]", "end"]


def test_fan_out_children_are_collapsed_largest_group_first_when_rows_do_not_fit() -> None:
    tasks = [_task("big", 0, started_at=0.0, finished_at=4.0)]
    attempts = []
    for index in range(100):
        tasks.append(_task(f"big[{index}]", 1 + index, parent_id="big", finished_at=4.0))
        # ten at a time: child i waits from 0 to i // 10 * 0.4, then runs 0.4 s
        start = index // 10 * 0.4
        attempts.append(
            _attempt(f"big[{index}]", start, start + 0.4, queued_at=0.0, waited_for="slot in x")
        )
    tasks.append(_task("small", 101, started_at=4.0, finished_at=5.0))
    for index in range(5):
        tasks.append(_task(f"small[{index}]", 102 + index, parent_id="small", finished_at=5.0))
    tasks.append(_task("last", 107, finished_at=6.0))
    timeline = build_timeline(_snapshot(tasks), attempts, {}, now=10.0, max_rows=60)

    keys = [row.key for row in timeline.rows]
    assert keys == ["big", "big[*]", "small", *(f"small[{i}]" for i in range(5)), "last"]
    group = timeline.rows[1]
    assert (group.kind, group.members, group.depth, group.label) == ("group", 100, 1, "big ×100")
    assert group.counts == {"succeeded": 100}
    assert group.band is not None
    assert (group.band.peak_running, group.band.peak_waiting) == (10, 90)
    assert group.band.points[0] == (0.0, 10, 90)
    assert group.band.points[-1] == (4.0, 0, 0)
    assert timeline.note == "1 fan-out group collapsed into one row each"


def test_five_hundred_independent_tasks_keep_the_telling_ones_and_summarise_the_rest() -> None:
    tasks = [
        _task(f"t{index}", index, started_at=0.5, finished_at=1.0 + index / 1000)
        for index in range(499)
    ]
    tasks.append(_task("broken", 499, "failed", started_at=0.5, finished_at=0.5, attempts=3))
    attempts = [_attempt(task.task_id, 0.5, task.finished_at) for task in tasks]
    timeline = build_timeline(_snapshot(tasks), attempts, {}, now=10.0)

    assert len(timeline.rows) == 60
    assert timeline.critical_path == ("t498",)
    keys = [row.key for row in timeline.rows]
    # the critical path and the failure, then the longest tasks, in document order
    assert keys[:-1] == [*(f"t{index}" for index in range(441, 499)), "broken"]
    others = timeline.rows[-1]
    assert (others.kind, others.members, others.label) == ("others", 441, "441 other tasks")
    assert others.counts == {"succeeded": 441}
    assert timeline.note == "441 tasks summarised in the last row"

    svg = render_svg(timeline)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert 'width="1100"' in svg
    height = int(svg.split('height="', 1)[1].split('"', 1)[0])
    assert 1000 < height < 1600  # 60 rows: tall but readable, never 500 rows


def test_the_band_of_many_tasks_draws_a_step_per_position_not_per_change() -> None:
    """20,000 attempts in one second: over 20,000 changes, drawn in at most a step for each tenth
    of a pixel of the picture's width, not one for each change."""
    tasks = [
        _task(f"t{index}", index, started_at=index / 20_000, finished_at=index / 20_000 + 0.01)
        for index in range(20_000)
    ]
    attempts = [_attempt(task.task_id, task.started_at, task.finished_at) for task in tasks]
    timeline = build_timeline(_snapshot(tasks, finished=1.1), attempts, {}, now=2.0)
    (band,) = [row.band for row in timeline.rows if row.band is not None]  # "other tasks"
    assert len(band.points) > 20_000
    svg = render_svg(timeline)
    path = svg.split('<path d="', 1)[1].split('"', 1)[0]
    steps = path.count("L") // 2
    assert 100 < steps <= 11_000
    assert len(svg) < 400_000


def test_concurrency_band_counts_running_and_waiting() -> None:
    spans = [
        Span("wait", 0.0, 1.0, 1, wait_kind="slot"),
        Span("run", 1.0, 2.0, 1, "succeeded"),
        Span("run", 0.0, 1.5, 1, "succeeded"),
        Span("backoff", 0.0, 3.0, 2),
    ]
    band = concurrency_band(spans)
    assert band.points == ((0.0, 1, 1), (1.0, 2, 0), (1.5, 1, 0), (2.0, 0, 0))
    assert (band.peak_running, band.peak_waiting) == (2, 1)


def test_wait_kinds() -> None:
    assert wait_kind("rate limit api (10/s)") == "rate"
    assert wait_kind("slot in max_concurrent orchestration (2 at once)") == "slot"
    assert wait_kind("slot in server-wide server (8 at once)") == "slot"
    assert wait_kind(None) == "queued"


def test_axis_ticks_are_round_and_cover_the_run() -> None:
    assert axis_ticks(1.2) == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2)
    assert axis_ticks(45) == (0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0)
    assert axis_ticks(600) == tuple(float(60 * i) for i in range(11))
    assert axis_ticks(0) == (0.0,)
    assert format_tick(0.4, 0.2) == "0.4s"
    assert format_tick(0.25, 0.25) == "0.25s"
    assert format_tick(30, 5) == "30s"
    assert format_tick(90, 30) == "1m 30s"
    assert format_tick(120, 60) == "2m"
    assert format_tick(3900, 300) == "1h 05m"
