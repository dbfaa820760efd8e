"""The seed's summary report: totals, shares, duration, parallelism, failures and outputs."""

from __future__ import annotations

import operator
import time
from collections.abc import Sequence
from pathlib import Path

from multi_task_orchestrator.engine.reports.approval_text import approval_lines
from multi_task_orchestrator.engine.reports.text import (
    format_duration,
    one_line,
    task_error,
    task_reason,
)
from multi_task_orchestrator.engine.state import RunSnapshot, RunStatus, TaskSnapshot, TaskState
from multi_task_orchestrator.engine.usage import budget_text, usage_text

RULE = "═" * 39

SUMMARY_TEXT_LIMIT = 200
# A config error says what to change (install a browser, store a secret): the summary keeps it.
SUMMARY_CONFIG_TEXT_LIMIT = 600

SUMMARY_TITLES = {
    RunStatus.succeeded: "ORCHESTRATION COMPLETE",
    RunStatus.failed: "ORCHESTRATION COMPLETE WITH FAILURES",
    RunStatus.cancelled: "ORCHESTRATION CANCELLED",
    RunStatus.running: "ORCHESTRATION IN PROGRESS",
    RunStatus.pending: "ORCHESTRATION IN PROGRESS",
}

# The states the summary lists under FAILURES.
_FAILURE_STATES = frozenset({TaskState.failed, TaskState.skipped, TaskState.cancelled})

_position = operator.attrgetter("position")


def render_summary(
    snapshot: RunSnapshot,
    output_files: Sequence[str | Path] = (),
    *,
    now: float | None = None,
    max_failures: int | None = None,
) -> str:
    """The seed's summary report, without a trailing newline::

        ORCHESTRATION COMPLETE WITH FAILURES
        ═══════════════════════════════════════
        Tasks:      25 total
        Success:    23 (92%)
        Failed:     1 (4%)
        Skipped:    1 (4%)
        Duration:   45.2 seconds
        Parallel:   5 concurrent max

        FAILURES:
        - extract_site_b (Site B): Connection timeout [network, 3 attempts]
        - merge_content: skipped: dependency extract_site_b failed

        OUTPUTS:
        - /runs/abc/aggregated_results.json
        ═══════════════════════════════════════

    The title follows ``snapshot.status``: succeeded ``ORCHESTRATION COMPLETE``, failed
    ``ORCHESTRATION COMPLETE WITH FAILURES``, cancelled ``ORCHESTRATION CANCELLED``, pending or
    running ``ORCHESTRATION IN PROGRESS``.

    Every row of the snapshot is a task here, fan-out parents and their children alike, so
    ``Tasks`` equals ``len(snapshot.tasks)``. ``Success`` and ``Failed`` always show;
    ``Skipped``, ``Cancelled`` and ``Remaining`` (not finished yet) only when not zero.
    Percentages are of all tasks, rounded half up to whole numbers. ``Duration`` is the run's
    elapsed time: ``45.2 seconds`` under a minute, else as ``format_duration`` (``1m 05s``).
    ``Parallel`` is ``snapshot.max_parallel``. A run with model steps (``snapshot.usage``) adds
    ``Tokens:     182k in / 41k out · $1.37`` (every attempt's calls, retries included) and,
    with a budget, ``Budget:     48,210 of 50,000 tokens used`` (``— spent: model steps
    stopped`` once a limit was reached). An ``Error:`` line follows when ``snapshot.error`` is
    set.

    ``FAILURES`` lists every failed, skipped and cancelled task in document order, as
    ``- <task_id> (<label>): <what happened>`` (the label only when it differs from the id). A
    failed task shows its error, then in brackets its error class when the message does not
    already say it (and it is not the generic ``error``) and its attempts when more than one.
    A skipped task shows ``skipped: <reason>`` (or its chain when no reason was recorded), a
    cancelled one ``cancelled`` with its reason when set. With ``max_failures``, at most that
    many are listed, failed ones before skipped and cancelled ones, then ``- … and N more``.
    ``APPROVALS`` lists each approval task that asked: who decided, when, and their note
    (``engine.reports.approval_text``).
    ``OUTPUTS`` lists ``output_files`` as given; each section appears only when it has lines.
    """
    now = time.time() if now is None else now
    total = len(snapshot.tasks)
    counts = snapshot.counts()
    lines = [
        SUMMARY_TITLES[snapshot.status],
        RULE,
        _field("Tasks", f"{total} total"),
        _field("Success", _share(counts[TaskState.succeeded], total)),
        _field("Failed", _share(counts[TaskState.failed], total)),
    ]
    for state, name in ((TaskState.skipped, "Skipped"), (TaskState.cancelled, "Cancelled")):
        if counts[state]:
            lines.append(_field(name, _share(counts[state], total)))
    remaining = total - snapshot.done
    if remaining:
        lines.append(_field("Remaining", _share(remaining, total)))
    lines.append(_field("Duration", _summary_duration(snapshot.elapsed(now))))
    lines.append(_field("Parallel", f"{snapshot.max_parallel} concurrent max"))
    usage = snapshot.usage
    if usage is not None:
        lines.append(_field("Tokens", usage_text(usage)))
        if usage.budget is not None:
            lines.append(_field("Budget", budget_text(usage.budget).removeprefix("budget: ")))
    if snapshot.error:
        lines.append(_field("Error", one_line(snapshot.error, SUMMARY_TEXT_LIMIT)))

    failed = sorted(
        (task for task in snapshot.tasks if task.state in _FAILURE_STATES), key=_position
    )
    shown = failed
    if max_failures is not None and len(failed) > max_failures:
        shown = sorted(failed, key=lambda task: task.state is not TaskState.failed)[:max_failures]
    failures = [_failure_line(task) for task in shown]
    if len(shown) < len(failed):
        failures.append(f"- … and {len(failed) - len(shown):,} more")
    if failures:
        lines.extend(["", "FAILURES:", *failures])
    approvals = approval_lines(snapshot, SUMMARY_TEXT_LIMIT)
    if approvals:
        lines.extend(["", "APPROVALS:", *approvals])
    if output_files:
        lines.extend(["", "OUTPUTS:", *(f"- {path}" for path in output_files)])
    lines.append(RULE)
    return "\n".join(lines)


def _field(name: str, value: str) -> str:
    return f"{name + ':':<12}{value}"


def _share(count: int, total: int) -> str:
    # Integer arithmetic rounds half up exactly (round() would give 12% for 1 of 8).
    percent = (200 * count + total) // (2 * total) if total else 0
    return f"{count} ({percent}%)"


def _summary_duration(seconds: float) -> str:
    return f"{seconds:.1f} seconds" if seconds < 59.95 else format_duration(seconds)


def _failure_line(task: TaskSnapshot) -> str:
    name = task.task_id if task.label == task.task_id else f"{task.task_id} ({task.label})"
    if task.state is TaskState.failed:
        limit = SUMMARY_CONFIG_TEXT_LIMIT if task.error_class == "config" else SUMMARY_TEXT_LIMIT
        detail = task_error(task, limit) or "failed"
        notes = []
        error_class = task.error_class
        if error_class and error_class != "error" and error_class.lower() not in detail.lower():
            notes.append(error_class)
        if task.attempts > 1:
            notes.append(f"{task.attempts} attempts")
        if notes:
            detail += f" [{', '.join(notes)}]"
    elif task.state is TaskState.skipped:
        reason = task_reason(task, "skipped", SUMMARY_TEXT_LIMIT)
        if not reason and task.chain:
            reason = "chain " + " -> ".join(task.chain)
        detail = "skipped" + (f": {reason}" if reason else "")
    else:
        reason = task_reason(task, "cancelled", SUMMARY_TEXT_LIMIT)
        detail = "cancelled" + (f": {reason}" if reason else "")
    return f"- {name}: {detail}"
