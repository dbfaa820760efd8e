"""The scheduler's rules, measured on real runs against a real SQLite file.

Concurrency and order are read back from the persisted attempt rows, so each rule is checked
as it happened, not as configured. Timing checks are lower bounds only (a busy machine can only
make things slower).
"""

from __future__ import annotations

import itertools
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from multi_task_orchestrator.engine.engine import Engine, IdempotencyConflict, NotAllowedNow
from multi_task_orchestrator.engine.issues import DocumentError
from multi_task_orchestrator.engine.state import RunSnapshot, RunStatus, TaskState
from multi_task_orchestrator.engine.store import AttemptRow

pytestmark = pytest.mark.anyio


def task(task_id: str, seconds: float = 0.05, **fields: Any) -> dict[str, Any]:
    config = {"seconds": seconds, **fields.pop("config", {})}
    return {"id": task_id, "type": "delay", "config": config, **fields}


async def run(engine: Engine, document: dict[str, Any], timeout: float = 30) -> RunSnapshot:
    run_id = await engine.submit(document)
    snapshot = await engine.wait(run_id, timeout, include_outputs=True)
    assert snapshot.status.terminal, f"run did not finish: {snapshot.status}"
    return snapshot


async def attempts(engine: Engine, run_id: str) -> list[AttemptRow]:
    return sorted(await engine.store.load_attempts(run_id), key=lambda a: a.started_at)


def max_overlap(spans: list[AttemptRow]) -> int:
    points = []
    for span in spans:
        assert span.finished_at is not None
        points += [(span.started_at, 1), (span.finished_at, -1)]
    current = peak = 0
    for _, change in sorted(points, key=lambda p: (p[0], p[1])):  # ends before starts on ties
        current += change
        peak = max(peak, current)
    return peak


def by_id(snapshot: RunSnapshot) -> dict[str, Any]:
    return {t.task_id: t for t in snapshot.tasks}


# --- ordering and slots -------------------------------------------------------------------


async def test_priority_order_under_a_limit_of_one(engine: Engine) -> None:
    priorities = {"p1": 1, "p5a": 5, "p3": 3, "p5b": 5, "p0": 0}
    document = {
        "limits": {"one": {"concurrency": 1}},
        "tasks": [
            task(name, 0.02, priority=priority, limit="one")
            for name, priority in priorities.items()
        ],
    }
    snapshot = await run(engine, document)
    order = [a.task_id for a in await attempts(engine, snapshot.id)]
    assert order == ["p5a", "p5b", "p3", "p1", "p0"]
    assert snapshot.max_parallel == 1


async def test_max_concurrent_is_never_exceeded_and_is_reached(engine: Engine) -> None:
    document = {"max_concurrent": 4, "tasks": [task(f"t{i}", 0.05) for i in range(12)]}
    snapshot = await run(engine, document)
    assert snapshot.status == RunStatus.succeeded
    assert max_overlap(await attempts(engine, snapshot.id)) == 4
    assert snapshot.max_parallel == 4


async def test_named_limit_caps_its_members_only(engine: Engine) -> None:
    document = {
        "max_concurrent": 10,
        "limits": {"api": {"concurrency": 2}},
        "tasks": [task(f"api{i}", 0.08, limit="api") for i in range(6)]
        + [task(f"free{i}", 0.08) for i in range(4)],
    }
    snapshot = await run(engine, document)
    spans = await attempts(engine, snapshot.id)
    assert max_overlap([s for s in spans if s.task_id.startswith("api")]) == 2
    assert max_overlap(spans) == 6


async def test_server_wide_cap_holds_across_orchestrations(home: Path) -> None:
    async with await Engine.open(
        home / "state.db", home / "runs", resume=False, max_concurrent=3
    ) as engine:
        first = await engine.submit({"tasks": [task(f"a{i}", 0.05) for i in range(6)]})
        second = await engine.submit({"tasks": [task(f"b{i}", 0.05) for i in range(6)]})
        await engine.wait(first, 30)
        await engine.wait(second, 30)
        spans = await attempts(engine, first) + await attempts(engine, second)
        assert max_overlap(spans) == 3


async def test_rate_limit_spaces_starts(engine: Engine) -> None:
    document = {
        "limits": {"api": {"rate": "20/s"}},
        "tasks": [task(f"t{i}", 0, limit="api") for i in range(10)],
    }
    snapshot = await run(engine, document)
    starts = [a.started_at for a in await attempts(engine, snapshot.id)]
    # at most 20/s: no 250 ms window (half-open) holds more than 5 starts
    for first in starts:
        assert sum(1 for s in starts if first <= s < first + 0.25) <= 5
    assert starts[-1] - starts[0] >= 9 * 0.05 * 0.95


async def test_rate_limit_wait_is_shown_in_status(engine: Engine) -> None:
    document = {
        "limits": {"api": {"rate": "2/s"}},
        "tasks": [task(f"t{i}", 0, limit="api") for i in range(3)],
    }
    run_id = await engine.submit(document)
    snapshot = await engine.wait(run_id, 0.2)
    waiting = [t.waiting_for for t in snapshot.tasks if t.state == TaskState.queued]
    assert waiting and waiting[0] == "rate limit api (2/s)"
    await engine.cancel(run_id)


# --- modes --------------------------------------------------------------------------------


async def test_sequential_runs_one_at_a_time_in_document_order(engine: Engine) -> None:
    document = {
        "mode": "sequential",
        "tasks": [task("c", 0.02, priority=1), task("a", 0.02, priority=9), task("b", 0.02)],
    }
    snapshot = await run(engine, document)
    spans = await attempts(engine, snapshot.id)
    assert [s.task_id for s in spans] == ["c", "a", "b"]
    assert max_overlap(spans) == 1


async def test_explicit_stages_are_barriers(engine: Engine) -> None:
    document = {
        "mode": "mixed",
        "tasks": [
            task("slow", 0.15, stage=1),
            task("fast", 0.01, stage=1),
            task("next", 0.01, stage=2),
        ],
    }
    snapshot = await run(engine, document)
    spans = {s.task_id: s for s in await attempts(engine, snapshot.id)}
    assert spans["next"].started_at >= spans["slow"].finished_at
    assert spans["fast"].started_at < spans["slow"].finished_at


async def test_mixed_mode_uses_dag_levels_as_stages(engine: Engine) -> None:
    tasks = [task("x", 0.15), task("y", 0.01), task("z", 0.01, dependencies=["y"])]
    mixed = await run(engine, {"mode": "mixed", "tasks": tasks})
    spans = {s.task_id: s for s in await attempts(engine, mixed.id)}
    assert spans["z"].started_at >= spans["x"].finished_at
    parallel = await run(engine, {"mode": "parallel", "tasks": tasks})
    spans = {s.task_id: s for s in await attempts(engine, parallel.id)}
    assert spans["z"].started_at < spans["x"].finished_at


# --- trigger rules and failure strategies -------------------------------------------------


async def test_trigger_rules(engine: Engine) -> None:
    failing = task("bad", 0, config={"fail": "error", "message": "boom"})
    document = {
        "tasks": [
            failing,
            task("good", 0),
            task("needs_success", 0, dependencies=["bad"]),
            task("after_all", 0, dependencies=["bad", "good"], run_if="all_done"),
            task("on_failure", 0, dependencies=["bad"], run_if="any_failed"),
            task("cleanup", 0, dependencies=["bad"], run_if="always"),
            task("no_failure", 0, dependencies=["good"], run_if="any_failed"),
        ]
    }
    snapshot = await run(engine, document)
    states = {t.task_id: t.state for t in snapshot.tasks}
    assert states == {
        "bad": TaskState.failed,
        "good": TaskState.succeeded,
        "needs_success": TaskState.skipped,
        "after_all": TaskState.succeeded,
        "on_failure": TaskState.succeeded,
        "cleanup": TaskState.succeeded,
        "no_failure": TaskState.skipped,
    }
    tasks = by_id(snapshot)
    assert tasks["needs_success"].reason == "dependency bad failed (boom)"
    assert tasks["no_failure"].reason == "no dependency failed (run_if: any_failed)"
    assert snapshot.status == RunStatus.failed


async def test_continue_skips_the_chain_and_reports_the_root_cause(engine: Engine) -> None:
    document = {
        "tasks": [
            task("extract_b", 0, config={"fail": "timeout", "message": "timeout after 30s"}),
            task("other", 0.02),
            task("merge_content", 0, dependencies=["extract_b"]),
            task("publish", 0, dependencies=["merge_content"]),
        ],
        "on_failure": {"strategy": "continue"},
    }
    snapshot = await run(engine, document)
    tasks = by_id(snapshot)
    assert tasks["other"].state == TaskState.succeeded
    assert tasks["merge_content"].reason == "dependency extract_b failed (timeout after 30s)"
    assert tasks["publish"].reason == (
        "dependency merge_content was skipped "
        "(chain: merge_content -> extract_b; extract_b failed: timeout after 30s)"
    )
    assert tasks["publish"].chain == ["merge_content", "extract_b"]
    assert tasks["extract_b"].error_class == "timeout"


async def test_abort_cancels_running_and_pending_but_runs_always(engine: Engine) -> None:
    document = {
        "tasks": [
            task("fails", 0.05, config={"fail": "error", "message": "broken"}),
            task("long", 10),
            task("after_long", 0, dependencies=["long"]),
            task("cleanup", 0, dependencies=["long"], run_if="always"),
        ],
        "on_failure": {"strategy": "abort"},
    }
    snapshot = await run(engine, document, timeout=8)
    states = {t.task_id: t.state for t in snapshot.tasks}
    assert states == {
        "fails": TaskState.failed,
        "long": TaskState.cancelled,
        "after_long": TaskState.cancelled,
        "cleanup": TaskState.succeeded,
    }
    assert snapshot.status == RunStatus.failed
    assert snapshot.error == "aborted: task fails failed (broken)"


async def test_retry_strategy_retries_then_continues(engine: Engine) -> None:
    document = {
        "tasks": [
            task("flaky", 0, config={"fail": "error", "fail_attempts": 1}),
            task("broken", 0, config={"fail": "error", "message": "always"}),
            task("fine", 0),
        ],
        "on_failure": {"strategy": "retry", "max_retries": 1},
    }
    snapshot = await run(engine, document)
    tasks = by_id(snapshot)
    assert (tasks["flaky"].state, tasks["flaky"].attempts) == (TaskState.succeeded, 2)
    assert (tasks["broken"].state, tasks["broken"].attempts) == (TaskState.failed, 2)
    assert tasks["fine"].attempts == 1


async def test_retry_counts_and_backoff_growth(engine: Engine) -> None:
    retry = {
        "max_attempts": 4,
        "initial": 0.05,
        "multiplier": 2,
        "jitter": False,
        "on": ["network"],
    }
    document = {"tasks": [task("net", 0, config={"fail": "network"}, retry=retry)]}
    snapshot = await run(engine, document)
    spans = await attempts(engine, snapshot.id)
    assert [s.attempt for s in spans] == [1, 2, 3, 4]
    assert all(s.outcome == "failed" and s.error_class == "network" for s in spans)
    gaps = [b.started_at - a.finished_at for a, b in itertools.pairwise(spans)]
    for gap, expected in zip(gaps, [0.05, 0.1, 0.2], strict=True):
        assert gap >= expected * 0.95


async def test_errors_outside_retry_on_are_not_retried(engine: Engine) -> None:
    retry = {"max_attempts": 5, "initial": 0.01, "on": ["network"]}
    document = {"tasks": [task("once", 0, config={"fail": "http_4xx"}, retry=retry)]}
    snapshot = await run(engine, document)
    assert by_id(snapshot)["once"].attempts == 1


async def test_retry_after_sets_the_next_delay(engine: Engine) -> None:
    retry = {"max_attempts": 2, "initial": 0.01, "on": ["http_429"]}
    config = {"fail": "http_429", "fail_attempts": 1, "retry_after": 0.3}
    snapshot = await run(engine, {"tasks": [task("api", 0, config=config, retry=retry)]})
    first, second = await attempts(engine, snapshot.id)
    assert second.started_at - first.finished_at >= 0.3 * 0.95
    assert by_id(snapshot)["api"].state == TaskState.succeeded


# --- timeouts and cancellation ------------------------------------------------------------


async def test_task_timeout(engine: Engine) -> None:
    snapshot = await run(engine, {"tasks": [task("slow", 10, timeout="100ms")]}, timeout=8)
    slow = by_id(snapshot)["slow"]
    assert (slow.state, slow.error_class, slow.error) == (
        TaskState.failed,
        "timeout",
        "timed out after 0.1s",
    )


async def test_orchestration_timeout(engine: Engine) -> None:
    document = {"timeout": 0.3, "tasks": [task("quick", 0), task("slow", 10)]}
    snapshot = await run(engine, document, timeout=8)
    assert snapshot.status == RunStatus.failed
    assert snapshot.error == "timed out after 0.3s"
    assert by_id(snapshot)["slow"].state == TaskState.cancelled
    assert by_id(snapshot)["quick"].state == TaskState.succeeded


async def test_cancel_orchestration(engine: Engine) -> None:
    document = {"tasks": [task("long", 10), task("later", 0, dependencies=["long"])]}
    run_id = await engine.submit(document)
    await engine.wait(run_id, 0.1)
    await engine.cancel(run_id)
    snapshot = await engine.wait(run_id, 8)
    assert snapshot.status == RunStatus.cancelled
    assert {t.task_id: t.state for t in snapshot.tasks} == {
        "long": TaskState.cancelled,
        "later": TaskState.cancelled,
    }


async def test_cancel_one_task_skips_its_dependents(engine: Engine) -> None:
    document = {
        "tasks": [task("long", 10), task("later", 0, dependencies=["long"]), task("other", 0.05)]
    }
    run_id = await engine.submit(document)
    await engine.wait(run_id, 0.1)
    await engine.cancel(run_id, "long")
    snapshot = await engine.wait(run_id, 8)
    tasks = by_id(snapshot)
    assert tasks["long"].state == TaskState.cancelled
    assert tasks["later"].state == TaskState.skipped
    assert tasks["later"].reason == "dependency long was cancelled (cancelled by request)"
    assert tasks["other"].state == TaskState.succeeded
    assert snapshot.status == RunStatus.failed


# --- fan-out ------------------------------------------------------------------------------


def fan_out(allow_partial: bool) -> dict[str, Any]:
    items = [{"n": n, "fail": "error" if n == 1 else None} for n in range(4)]
    return {
        "vars": {"items": items},
        "tasks": [
            {
                "id": "each",
                "type": "delay",
                "for_each": "${vars.items}",
                "max_concurrent": 2,
                "allow_partial": allow_partial,
                "config": {"seconds": 0.05, "fail": "${item.fail}", "value": "${item.n}"},
            },
            task("after", 0, dependencies=["each"]),
        ],
    }


async def test_fan_out_with_partial_failure_allowed(engine: Engine) -> None:
    snapshot = await run(engine, fan_out(allow_partial=True))
    tasks = by_id(snapshot)
    assert [t.task_id for t in snapshot.tasks] == [
        "each",
        "each[0]",
        "each[1]",
        "each[2]",
        "each[3]",
        "after",
    ]
    assert tasks["each"].state == TaskState.succeeded
    assert tasks["each"].output == [0, None, 2, 3]
    assert tasks["each"].reason.startswith("partial: 1 of 4 item(s) failed: each[1]")
    assert tasks["each[1]"].state == TaskState.failed
    assert tasks["after"].state == TaskState.succeeded
    children = [a for a in await attempts(engine, snapshot.id) if a.task_id.startswith("each[")]
    assert max_overlap(children) == 2


async def test_fan_out_failure_fails_the_parent(engine: Engine) -> None:
    snapshot = await run(engine, fan_out(allow_partial=False))
    tasks = by_id(snapshot)
    assert tasks["each"].state == TaskState.failed
    assert tasks["each"].error.startswith("1 of 4 item(s) failed: each[1]")
    assert tasks["after"].state == TaskState.skipped


async def test_fan_out_over_an_empty_list_succeeds(engine: Engine) -> None:
    document = {
        "vars": {"items": []},
        "tasks": [{"id": "each", "type": "delay", "for_each": "${vars.items}"}],
    }
    snapshot = await run(engine, document)
    assert by_id(snapshot)["each"].output == []


async def test_outputs_flow_through_references(engine: Engine) -> None:
    document = {
        "tasks": [
            task("a", 0, config={"value": {"items": [1, 2, 3], "name": "x"}}),
            task("b", 0, dependencies=["a"], config={"value": "${a.output.items}"}),
            task(
                "c", 0, dependencies=["a", "b"], config={"value": "n=${a.output.name} ${b.output}"}
            ),
        ]
    }
    snapshot = await run(engine, document)
    assert by_id(snapshot)["b"].output == [1, 2, 3]
    assert by_id(snapshot)["c"].output == "n=x [1,2,3]"


async def test_a_runner_error_keeps_its_message(engine: Engine) -> None:
    document = {
        "tasks": [
            {"id": "bad", "type": "data_processing", "config": {"action": "sort", "input": 5}},
            task("fine", 0),
        ]
    }
    snapshot = await run(engine, document)
    bad = by_id(snapshot)["bad"]
    assert bad.state == TaskState.failed
    assert "int" in bad.error
    assert by_id(snapshot)["fine"].state == TaskState.succeeded


# --- submission and resume ----------------------------------------------------------------


async def test_invalid_document_is_refused_and_nothing_is_stored(engine: Engine) -> None:
    with pytest.raises(DocumentError) as caught:
        await engine.submit({"tasks": [task("a", dependencies=["nope"]), task("a")]})
    messages = [issue.message for issue in caught.value.issues]
    assert len(messages) == 2
    assert await engine.list() == []


async def test_idempotency_key_returns_the_existing_run(engine: Engine) -> None:
    first = await engine.submit({"tasks": [task("a", 0)]}, idempotency_key="k1")
    second = await engine.submit({"tasks": [task("a", 0)]}, idempotency_key="k1")
    assert first == second
    assert len(await engine.list()) == 1
    with pytest.raises(IdempotencyConflict) as caught:  # the key, with another document
        await engine.submit({"tasks": [task("a", 1)]}, idempotency_key="k1")
    assert caught.value.orchestration_id == first
    assert caught.value.fields == ["tasks"]
    assert len(await engine.list()) == 1


async def test_resume_after_stop_finishes_without_rerunning_finished_tasks(home: Path) -> None:
    document = {
        "tasks": [
            task("a", 0),
            task("b", 0),
            task("slow", 0.6),
            task("after_a", 0, dependencies=["a"]),
            task("after_slow", 0, dependencies=["slow"]),
        ]
    }
    first = await Engine.open(home / "state.db", home / "runs", resume=False)
    run_id = await first.submit(document)
    snapshot = await first.wait(run_id, 0.3)
    assert by_id(snapshot)["slow"].state == TaskState.running
    assert by_id(snapshot)["a"].state == TaskState.succeeded
    await first.aclose(grace=0)

    async with await Engine.open(home / "state.db", home / "runs") as second:
        assert run_id not in second.runs or second.runs[run_id].id == run_id
        snapshot = await second.wait(run_id, 30)
        assert snapshot.status == RunStatus.succeeded
        counts: dict[str, int] = {}
        for attempt in await second.store.load_attempts(run_id):
            counts[attempt.task_id] = counts.get(attempt.task_id, 0) + 1
        assert counts == {"a": 1, "b": 1, "after_a": 1, "slow": 2, "after_slow": 1}
        kinds = [event.kind for event in await second.events(run_id)]
        assert "resumed" in kinds


async def test_retry_reruns_what_did_not_succeed_and_keeps_the_rest(engine: Engine) -> None:
    document = {
        "tasks": [
            task("ok", 0, config={"value": "kept"}),
            task("slow", 0.5, timeout=0.05),
            task("after_slow", 0, dependencies=["slow"]),
        ]
    }
    first = await run(engine, document)
    assert first.status == RunStatus.failed
    assert await engine.retry(first.id) == first.id
    again = await engine.wait(first.id, 30, include_outputs=True)
    assert again.status == RunStatus.failed
    counts: dict[str, list[int]] = {}
    for attempt in await engine.store.load_attempts(first.id):
        counts.setdefault(attempt.task_id, []).append(attempt.attempt)
    assert counts == {"ok": [1], "slow": [1, 2]}
    assert by_id(again)["ok"].output == "kept"
    assert by_id(again)["after_slow"].state == TaskState.skipped
    kinds = [event.kind for event in await engine.events(first.id)]
    assert kinds.count("finished") == 2 and "retried" in kinds


async def test_retry_of_a_successful_run_is_refused(engine: Engine) -> None:
    snapshot = await run(engine, {"tasks": [task("a", 0)]})
    with pytest.raises(NotAllowedNow, match="nothing to retry"):
        await engine.retry(snapshot.id)


async def test_a_run_owned_by_a_live_engine_is_not_resumed_by_another(home: Path) -> None:
    document = {"tasks": [task("slow", 0.4)]}
    async with await Engine.open(home / "state.db", home / "runs", resume=False) as owner:
        run_id = await owner.submit(document)
        async with await Engine.open(home / "state.db", home / "runs") as other:
            assert run_id not in other.runs
        snapshot = await owner.wait(run_id, 30)
        assert snapshot.status == RunStatus.succeeded
        attempts_made = await owner.store.load_attempts(run_id)
        assert len(attempts_made) == 1


async def test_a_run_whose_owners_lease_expired_is_resumed(home: Path) -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    first = await Engine.open(home / "state.db", home / "runs", resume=False)
    run_id = await first.submit({"tasks": [task("slow", 0.3)]})
    await first.wait(run_id, 0.05)
    await first.aclose(grace=0)
    with sqlite3.connect(home / "state.db") as db:  # a killed process held it; its lease ran out
        db.execute(
            "UPDATE orchestrations SET owner = ?, lease_until = ? WHERE id = ?",
            (f"{socket.gethostname()}:{finished.pid}:dead", time.time() - 1, run_id),
        )
    async with await Engine.open(home / "state.db", home / "runs") as second:
        assert run_id in second.runs
        assert (await second.wait(run_id, 30)).status == RunStatus.succeeded


@pytest.mark.parametrize("breaks", ["after", "slow"])
async def test_a_bug_in_the_runs_bookkeeping_ends_the_run_failed_not_running(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, breaks: str
) -> None:
    """Whatever raises while a finished task's dependents are released, or while the run's
    first tasks are (here a trigger check made to raise, standing for a bug), ends the run
    failed with that error — the tasks not ended cancelled, those under way interrupted —
    instead of leaving it running for ever."""
    from multi_task_orchestrator.engine.run import readiness

    checked = readiness.trigger_blocks

    def broken(node: Any, nodes: Any) -> str | None:
        if node.task_id == breaks:
            raise RuntimeError("a bug")
        return checked(node, nodes)

    monkeypatch.setattr(readiness, "trigger_blocks", broken)
    document = {
        "tasks": [
            task("first", 0.0),
            task("slow", 30),
            task("after", dependencies=["first"]),
            task("last", dependencies=["after"]),
        ]
    }
    snapshot = await run(engine, document, timeout=20)
    assert snapshot.status is RunStatus.failed
    assert snapshot.error == "internal error: RuntimeError: a bug"
    states = {t.task_id: t.state for t in snapshot.tasks}
    assert states == {
        "first": TaskState.succeeded if breaks == "after" else TaskState.cancelled,
        "slow": TaskState.cancelled,
        "after": TaskState.cancelled,
        "last": TaskState.cancelled,
    }
    with sqlite3.connect(engine.store.path) as db:
        stored = dict(db.execute("SELECT task_id, state FROM tasks"))
        run_status = db.execute("SELECT status FROM orchestrations").fetchall()
    db.close()
    assert stored == {key: value.value for key, value in states.items()}
    assert run_status == [("failed",)]
