"""The status display, summary report, aggregated results, log and run files, checked as exact
text against hand-built snapshots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from multi_task_orchestrator.engine.reports.display import progress_bar, render_status
from multi_task_orchestrator.engine.reports.files import write_run_files
from multi_task_orchestrator.engine.reports.log import log_lines, render_log
from multi_task_orchestrator.engine.reports.results import aggregated_results
from multi_task_orchestrator.engine.reports.summary import render_summary
from multi_task_orchestrator.engine.reports.text import format_duration
from multi_task_orchestrator.engine.state import (
    EventRecord,
    RunSnapshot,
    RunStatus,
    TaskSnapshot,
    TaskState,
)

T0 = 1_795_511_700.0  # 2026-11-24T09:15:00Z


def task(task_id: str, state: TaskState, position: int, **fields: Any) -> TaskSnapshot:
    fields.setdefault("label", task_id)
    fields.setdefault("type", "delay")
    return TaskSnapshot(task_id=task_id, state=state, position=position, **fields)


def done(task_id: str, position: int, seconds: float, **fields: Any) -> TaskSnapshot:
    return task(
        task_id,
        TaskState.succeeded,
        position,
        attempts=1,
        started_at=T0,
        finished_at=T0 + seconds,
        **fields,
    )


def run(
    tasks: list[TaskSnapshot], status: RunStatus = RunStatus.running, **fields: Any
) -> RunSnapshot:
    fields.setdefault("started_at", T0)
    return RunSnapshot(
        id="run-1",
        name="Multi-Site Content Sync",
        status=status,
        created_at=T0,
        tasks=tasks,
        **fields,
    )


# --- format_duration and progress_bar -------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0.0s"),
        (2.3, "2.3s"),
        (59.94, "59.9s"),
        (59.96, "1m 00s"),
        (65, "1m 05s"),
        (3599.4, "59m 59s"),
        (3599.6, "1h 00m"),
        (3725, "1h 02m"),
        (-1, "0.0s"),
        (math.nan, "0.0s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("percent", "width", "text"),
    [
        (70, 20, "[██████████████░░░░░░] 70% Complete"),
        (99.6, 20, "[███████████████████░] 99% Complete"),
        (100, 20, "[████████████████████] 100% Complete"),
        (0, 20, "[░░░░░░░░░░░░░░░░░░░░] 0% Complete"),
        (-5, 20, "[░░░░░░░░░░░░░░░░░░░░] 0% Complete"),
        (150, 20, "[████████████████████] 100% Complete"),
        (35, 10, "[███░░░░░░░] 35% Complete"),
        (100 * 2 / 3, 20, "[█████████████░░░░░░░] 66% Complete"),
    ],
)
def test_progress_bar(percent: float, width: int, text: str) -> None:
    assert progress_bar(percent, width) == text


def test_progress_bar_rejects_a_zero_width() -> None:
    with pytest.raises(ValueError, match="width must be at least 1, got 0"):
        progress_bar(50, 0)


# --- render_status --------------------------------------------------------------------------


def seed_rows() -> list[TaskSnapshot]:
    return [
        done("site_a", 0, 2.3, label="Site A"),
        done("site_b", 1, 1.8, label="Site B"),
        task("site_c", TaskState.running, 2, label="Site C", attempts=1, started_at=T0 + 1.0),
        task("site_d", TaskState.queued, 3, label="Site D"),
        task(
            "site_e",
            TaskState.retrying,
            4,
            label="Site E",
            attempts=1,
            max_attempts=3,
            error="Connection timeout",
            error_class="network",
        ),
    ]


def test_status_reproduces_the_seed_display() -> None:
    text = render_status(run(seed_rows()), now=T0 + 5.1)
    assert text == (
        "[████████░░░░░░░░░░░░] 40% Complete\n"
        "2/5 done · 1 running · 1 retrying · 1 queued · 5.1s\n"
        "├─ Site A: ✓ Complete (2.3s)\n"
        "├─ Site B: ✓ Complete (1.8s)\n"
        "├─ Site C: ⏳ Running... (4.1s)\n"
        "├─ Site D: ⏳ Queued\n"
        "└─ Site E: ↻ Retrying (retry 1/3) — Connection timeout"
    )


def test_status_marks_for_every_state() -> None:
    rows = [
        task("a", TaskState.succeeded, 0),
        task("b", TaskState.running, 1, attempts=2, max_attempts=3, started_at=T0 + 8),
        task("c", TaskState.running, 2),
        task("d", TaskState.queued, 3, waiting_for="limit api (rate 10/s)"),
        task("e", TaskState.pending, 4),
        task("f", TaskState.retrying, 5, attempts=2, max_attempts=5),
        task("g", TaskState.failed, 6, attempts=1, error="HTTP 404 Not Found\nat /feed"),
        task("h", TaskState.failed, 7, attempts=3, max_attempts=3, error_class="timeout"),
        task("i", TaskState.failed, 8),
        task("j", TaskState.skipped, 9, reason="skipped: dependency g failed (HTTP 404 Not Found)"),
        task("k", TaskState.skipped, 10),
        task("l", TaskState.cancelled, 11),
        task("m", TaskState.cancelled, 12, reason="orchestration aborted"),
        task("n", TaskState.failed, 13, error="x" * 100),
    ]
    text = render_status(run(rows), now=T0 + 10)
    assert text.splitlines() == [
        "[████████████░░░░░░░░] 64% Complete",
        "9/14 done · 2 running · 1 retrying · 1 queued · 1 waiting · 4 failed · 2 skipped"
        " · 2 cancelled · 10.0s",
        "├─ a: ✓ Complete",
        "├─ b: ⏳ Running... (2.0s, attempt 2/3)",
        "├─ c: ⏳ Running...",
        "├─ d: ⏳ Queued — waiting: limit api (rate 10/s)",
        "├─ e: … Waiting",
        "├─ f: ↻ Retrying (retry 2/5)",
        "├─ g: ✗ Failed (HTTP 404 Not Found at /feed)",
        "├─ h: ✗ Failed after 3 attempts (timeout)",
        "├─ i: ✗ Failed",
        "├─ j: ⊘ Skipped (dependency g failed (HTTP 404 Not Found))",
        "├─ k: ⊘ Skipped",
        "├─ l: ⊘ Cancelled",
        "├─ m: ⊘ Cancelled (orchestration aborted)",
        "└─ n: ✗ Failed (" + "x" * 79 + "…)",
    ]


def test_status_nests_fan_out_children_under_their_parent() -> None:
    rows = [
        done("merge", 0, 0.1),
        task("publish_all", TaskState.running, 1, started_at=T0 + 1),
        done("publish_all[0]", 2, 0.5, parent_id="publish_all"),
        task("publish_all[1]", TaskState.running, 3, parent_id="publish_all", started_at=T0 + 1),
        task("report", TaskState.pending, 4),
        task("notify_all", TaskState.running, 5),
        task("notify_all[0]", TaskState.queued, 6, parent_id="notify_all"),
        task("notify_all[1]", TaskState.queued, 7, parent_id="notify_all"),
    ]
    text = render_status(run(rows), now=T0 + 2)
    assert text.splitlines()[2:] == [
        "├─ merge: ✓ Complete (0.1s)",
        "├─ publish_all: ⏳ Running... (1.0s)",
        "│  ├─ publish_all[0]: ✓ Complete (0.5s)",
        "│  └─ publish_all[1]: ⏳ Running... (1.0s)",
        "├─ report: … Waiting",
        "└─ notify_all: ⏳ Running...",
        "   ├─ notify_all[0]: ⏳ Queued",
        "   └─ notify_all[1]: ⏳ Queued",
    ]


def test_status_keeps_the_most_relevant_rows_when_there_are_too_many() -> None:
    rows = [done(f"t{index}", index, 1.0) for index in range(8)]
    rows[3] = task("t3", TaskState.failed, 3, error="boom")
    rows[6] = task("t6", TaskState.running, 6)
    rows[7] = task("t7", TaskState.pending, 7)
    text = render_status(run(rows), now=T0 + 3, max_rows=4)
    assert text.splitlines()[2:] == [
        "├─ t0: ✓ Complete (1.0s)",
        "├─ t3: ✗ Failed (boom)",
        "├─ t6: ⏳ Running...",
        "└─ … and 5 more (4 done)",
    ]


def test_truncation_shows_the_parent_of_every_child_it_shows() -> None:
    rows = [
        done("a", 0, 1.0),
        done("b", 1, 1.0),
        task("fan", TaskState.running, 2),
        done("fan[0]", 3, 1.0, parent_id="fan"),
        task("fan[1]", TaskState.retrying, 4, parent_id="fan", attempts=1, max_attempts=2),
        task("fan[2]", TaskState.running, 5, parent_id="fan"),
    ]
    text = render_status(run(rows), now=T0 + 3, max_rows=4)
    assert text.splitlines()[2:] == [
        "├─ fan: ⏳ Running...",
        "│  ├─ fan[1]: ↻ Retrying (retry 1/2)",
        "│  └─ fan[2]: ⏳ Running...",
        "└─ … and 3 more (3 done)",
    ]


def test_status_with_room_for_the_summary_line_only() -> None:
    rows = [done("a", 0, 1.0), task("b", TaskState.running, 1)]
    text = render_status(run(rows), now=T0 + 1, max_rows=1)
    assert text.splitlines()[2:] == ["└─ … and 2 more (1 done)"]


def test_status_rejects_max_rows_below_one() -> None:
    with pytest.raises(ValueError, match="max_rows must be at least 1, got 0"):
        render_status(run([]), now=T0, max_rows=0)


def test_status_of_a_run_with_no_tasks_not_started() -> None:
    snapshot = run([], status=RunStatus.pending, started_at=None)
    assert render_status(snapshot, now=T0) == "[████████████████████] 100% Complete\n0/0 done"


# --- render_summary -------------------------------------------------------------------------


def test_summary_of_a_successful_run() -> None:
    rows = [done(f"t{index}", index, 1.0) for index in range(4)]
    snapshot = run(rows, status=RunStatus.succeeded, finished_at=T0 + 45.2, max_parallel=5)
    outputs = ["/outputs/aggregated_results.json", Path("/outputs/execution_log.txt")]
    assert render_summary(snapshot, outputs, now=T0 + 99) == (
        "ORCHESTRATION COMPLETE\n"
        "═══════════════════════════════════════\n"
        "Tasks:      4 total\n"
        "Success:    4 (100%)\n"
        "Failed:     0 (0%)\n"
        "Duration:   45.2 seconds\n"
        "Parallel:   5 concurrent max\n"
        "\n"
        "OUTPUTS:\n"
        "- /outputs/aggregated_results.json\n"
        "- /outputs/execution_log.txt\n"
        "═══════════════════════════════════════"
    )


def test_summary_with_failures_and_a_skipped_chain() -> None:
    rows = [done(f"ok{index}", index, 1.0) for index in range(21)]
    rows += [
        task(
            "extract_site_b",
            TaskState.failed,
            21,
            label="Site B",
            attempts=3,
            max_attempts=3,
            error="Connection timeout",
            error_class="network",
        ),
        task(
            "extract_site_c", TaskState.failed, 22, error="timeout after 30s", error_class="timeout"
        ),
        task(
            "merge_content",
            TaskState.skipped,
            23,
            reason="skipped: dependency extract_site_b failed (Connection timeout)",
            chain=["merge_content", "extract_site_b"],
        ),
        task("publish_all", TaskState.skipped, 24, chain=["publish_all", "merge_content"]),
    ]
    snapshot = run(rows, status=RunStatus.failed, finished_at=T0 + 65.4, max_parallel=5)
    assert render_summary(snapshot, now=T0 + 99) == (
        "ORCHESTRATION COMPLETE WITH FAILURES\n"
        "═══════════════════════════════════════\n"
        "Tasks:      25 total\n"
        "Success:    21 (84%)\n"
        "Failed:     2 (8%)\n"
        "Skipped:    2 (8%)\n"
        "Duration:   1m 05s\n"
        "Parallel:   5 concurrent max\n"
        "\n"
        "FAILURES:\n"
        "- extract_site_b (Site B): Connection timeout [network, 3 attempts]\n"
        "- extract_site_c: timeout after 30s\n"
        "- merge_content: skipped: dependency extract_site_b failed (Connection timeout)\n"
        "- publish_all: skipped: chain publish_all -> merge_content\n"
        "═══════════════════════════════════════"
    )


def test_summary_of_a_cancelled_run_with_its_error() -> None:
    rows = [
        done("a", 0, 1.0),
        task("b", TaskState.cancelled, 1, reason="cancelled: orchestration timed out"),
        task("c", TaskState.cancelled, 2),
    ]
    snapshot = run(
        rows,
        status=RunStatus.cancelled,
        finished_at=T0 + 60,
        max_parallel=2,
        error="timed out after 60s",
    )
    assert render_summary(snapshot, now=T0 + 99) == (
        "ORCHESTRATION CANCELLED\n"
        "═══════════════════════════════════════\n"
        "Tasks:      3 total\n"
        "Success:    1 (33%)\n"
        "Failed:     0 (0%)\n"
        "Cancelled:  2 (67%)\n"
        "Duration:   1m 00s\n"
        "Parallel:   2 concurrent max\n"
        "Error:      timed out after 60s\n"
        "\n"
        "FAILURES:\n"
        "- b: cancelled: orchestration timed out\n"
        "- c: cancelled\n"
        "═══════════════════════════════════════"
    )


def test_summary_in_progress_counts_fan_out_parents_and_what_remains() -> None:
    rows = [
        done("a", 0, 1.0),
        task("fan", TaskState.running, 1),
        done("fan[0]", 2, 1.0, parent_id="fan"),
        task("fan[1]", TaskState.failed, 3, parent_id="fan", error="boom", error_class="error"),
        task("fan[2]", TaskState.running, 4, parent_id="fan"),
        task("fan[3]", TaskState.queued, 5, parent_id="fan"),
        task("fan[4]", TaskState.queued, 6, parent_id="fan"),
        task("last", TaskState.pending, 7),
    ]
    snapshot = run(rows, status=RunStatus.running, max_parallel=2)
    assert render_summary(snapshot, now=T0 + 12.34) == (
        "ORCHESTRATION IN PROGRESS\n"
        "═══════════════════════════════════════\n"
        "Tasks:      8 total\n"
        "Success:    2 (25%)\n"
        "Failed:     1 (13%)\n"
        "Remaining:  5 (63%)\n"
        "Duration:   12.3 seconds\n"
        "Parallel:   2 concurrent max\n"
        "\n"
        "FAILURES:\n"
        "- fan[1]: boom\n"
        "═══════════════════════════════════════"
    )


def test_summary_of_a_pending_run_with_no_tasks() -> None:
    snapshot = run([], status=RunStatus.pending, started_at=None)
    assert render_summary(snapshot, now=T0) == (
        "ORCHESTRATION IN PROGRESS\n"
        "═══════════════════════════════════════\n"
        "Tasks:      0 total\n"
        "Success:    0 (0%)\n"
        "Failed:     0 (0%)\n"
        "Duration:   0.0 seconds\n"
        "Parallel:   0 concurrent max\n"
        "═══════════════════════════════════════"
    )


# --- aggregated_results ---------------------------------------------------------------------


def test_aggregated_results_holds_every_task() -> None:
    rows = [
        done("extract", 0, 1.2345, type="http", output={"items": [1, 2]}, has_output=True),
        task(
            "merge",
            TaskState.failed,
            1,
            type="data_processing",
            attempts=2,
            max_attempts=2,
            started_at=T0 + 2,
            finished_at=T0 + 2.5,
            error="bad input",
            error_class="config",
        ),
        task(
            "publish",
            TaskState.skipped,
            2,
            reason="skipped: dependency merge failed",
            chain=["publish", "merge"],
        ),
    ]
    snapshot = run(rows, status=RunStatus.failed, finished_at=T0 + 3.0004, max_parallel=1)
    results = aggregated_results(snapshot)
    assert results == {
        "id": "run-1",
        "name": "Multi-Site Content Sync",
        "status": "failed",
        "started_at": "2026-11-24T09:15:00.000Z",
        "finished_at": "2026-11-24T09:15:03.000Z",
        "duration": 3.0,
        "max_parallel": 1,
        "error": None,
        "counts": {
            "total": 3,
            "pending": 0,
            "queued": 0,
            "running": 0,
            "retrying": 0,
            "succeeded": 1,
            "failed": 1,
            "skipped": 1,
            "cancelled": 0,
        },
        "tasks": {
            "extract": {
                "state": "succeeded",
                "type": "http",
                "label": "extract",
                "parent_id": None,
                "attempts": 1,
                "max_attempts": 1,
                "started_at": "2026-11-24T09:15:00.000Z",
                "finished_at": "2026-11-24T09:15:01.234Z",
                "duration": 1.234,
                "error": None,
                "error_class": None,
                "reason": None,
                "chain": [],
                "output": {"items": [1, 2]},
            },
            "merge": {
                "state": "failed",
                "type": "data_processing",
                "label": "merge",
                "parent_id": None,
                "attempts": 2,
                "max_attempts": 2,
                "started_at": "2026-11-24T09:15:02.000Z",
                "finished_at": "2026-11-24T09:15:02.500Z",
                "duration": 0.5,
                "error": "bad input",
                "error_class": "config",
                "reason": None,
                "chain": [],
                "output": None,
            },
            "publish": {
                "state": "skipped",
                "type": "delay",
                "label": "publish",
                "parent_id": None,
                "attempts": 0,
                "max_attempts": 1,
                "started_at": None,
                "finished_at": None,
                "duration": None,
                "error": None,
                "error_class": None,
                "reason": "skipped: dependency merge failed",
                "chain": ["publish", "merge"],
                "output": None,
            },
        },
    }
    assert json.loads(json.dumps(results)) == results


# --- render_log -----------------------------------------------------------------------------


def test_log_lines() -> None:
    events = [
        EventRecord(seq=3, ts=T0 + 4.456, task_id="extract_b", kind="failed", level="error",
                    message="Connection timeout", data={"error_class": "network", "attempt": 1}),
        EventRecord(seq=1, ts=T0 + 0.001, kind="submitted", message="5 tasks"),
        EventRecord(seq=2, ts=T0 + 2.123, task_id="extract_a", kind="log", level="warning",
                    message="slow page\nretrying selector",
                    data={"url": "https://a.test/x?y=1", "note": "two words", "empty": "",
                          "ok": True, "missing": None, "ids": [1, "b"], "meta": {"k": 1.5}}),
    ]  # fmt: skip
    assert render_log(events) == (
        "2026-11-24T09:15:00.001Z INFO  [orchestration] submitted: 5 tasks\n"
        "2026-11-24T09:15:02.123Z WARN  [extract_a] log: slow page\\nretrying selector"
        ' url=https://a.test/x?y=1 note="two words" empty="" ok=true missing=null'
        ' ids=[1,"b"] meta={"k":1.5}\n'
        "2026-11-24T09:15:04.456Z ERROR [extract_b] failed: Connection timeout"
        " error_class=network attempt=1"
    )


def test_log_of_no_events_is_empty() -> None:
    assert render_log([]) == ""


# --- write_run_files ------------------------------------------------------------------------


def test_write_run_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [done("a", 0, 1.0, output="héllo", has_output=True), task("b", TaskState.failed, 1)]
    snapshot = run(rows, status=RunStatus.failed, finished_at=T0 + 2, max_parallel=2)
    events = [EventRecord(seq=1, ts=T0, task_id="a", kind="started", message="attempt 1")]
    monkeypatch.chdir(tmp_path)

    paths = write_run_files(snapshot, log_lines(events), Path("runs/run-1"))

    folder = tmp_path / "runs" / "run-1"
    assert paths == [
        folder / "aggregated_results.json",
        folder / "execution_log.txt",
        folder / "summary.txt",
    ]
    assert sorted(path.name for path in folder.iterdir()) == [
        "aggregated_results.json",
        "execution_log.txt",
        "summary.txt",
    ]
    results_text = paths[0].read_text(encoding="utf-8")
    assert '"output": "héllo"' in results_text
    assert json.loads(results_text) == aggregated_results(snapshot)
    assert paths[1].read_text(encoding="utf-8") == (
        "2026-11-24T09:15:00.000Z INFO  [a] started: attempt 1\n"
    )
    assert paths[2].read_text(encoding="utf-8") == (
        "ORCHESTRATION COMPLETE WITH FAILURES\n"
        "═══════════════════════════════════════\n"
        "Tasks:      2 total\n"
        "Success:    1 (50%)\n"
        "Failed:     1 (50%)\n"
        "Duration:   2.0 seconds\n"
        "Parallel:   2 concurrent max\n"
        "\n"
        "FAILURES:\n"
        "- b: failed\n"
        "\n"
        "OUTPUTS:\n"
        f"- {folder / 'aggregated_results.json'}\n"
        f"- {folder / 'execution_log.txt'}\n"
        f"- {folder / 'summary.txt'}\n"
        "═══════════════════════════════════════\n"
    )


def test_write_run_files_replaces_earlier_files(tmp_path: Path) -> None:
    first = run([task("a", TaskState.running, 0)], status=RunStatus.running)
    write_run_files(first, [], tmp_path, now=T0 + 1)
    second = run([done("a", 0, 1.0)], status=RunStatus.succeeded, finished_at=T0 + 1)

    paths = write_run_files(second, [], tmp_path)

    assert json.loads(paths[0].read_text(encoding="utf-8"))["status"] == "succeeded"
    assert paths[1].read_text(encoding="utf-8") == ""
    assert paths[2].read_text(encoding="utf-8").startswith("ORCHESTRATION COMPLETE\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "aggregated_results.json",
        "execution_log.txt",
        "summary.txt",
    ]


def test_a_retried_success_says_how_many_attempts() -> None:
    retried = TaskSnapshot(
        task_id="beta",
        label="Source beta",
        type="delay",
        state=TaskState.succeeded,
        position=0,
        attempts=2,
        max_attempts=3,
        started_at=10.0,
        finished_at=10.9,
    )
    snapshot = RunSnapshot(
        id="r", name="n", status=RunStatus.succeeded, created_at=10.0, tasks=[retried]
    )
    assert render_status(snapshot, now=11.0).splitlines()[-1] == (
        "└─ Source beta: ✓ Complete (0.9s, after 2 attempts)"
    )
