"""The seed's live status display: the progress bar, the count line and the task tree.

A pure function of a ``RunSnapshot``; which rows a large run keeps is chosen by the rules in
``engine.status_rows``, which the engine's status reads share.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from multi_task_orchestrator.engine.reports.approval_text import waiting_mark
from multi_task_orchestrator.engine.reports.text import (
    format_duration,
    one_line,
    task_error,
    task_reason,
)
from multi_task_orchestrator.engine.state import RunSnapshot, TaskSnapshot, TaskState
from multi_task_orchestrator.engine.status_rows import keep_status_rows, status_display_rank
from multi_task_orchestrator.engine.usage import usage_line

FULL_BLOCK = "█"
EMPTY_BLOCK = "░"

# How long a piece of free text (an error, a reason) may be on one line of each display.
STATUS_TEXT_LIMIT = 80

# Task states named on the status count line, in this order, with the word shown for each.
_COUNTED_STATES = (
    (TaskState.running, "running"),
    (TaskState.retrying, "retrying"),
    (TaskState.queued, "queued"),
    (TaskState.pending, "waiting"),
    (TaskState.failed, "failed"),
    (TaskState.skipped, "skipped"),
    (TaskState.cancelled, "cancelled"),
)


def progress_bar(percent: float, width: int = 20) -> str:
    """The seed's bar: ``"[██████████████░░░░░░] 70% Complete"``.

    ``percent`` is clamped to 0-100. Both the blocks and the number are rounded down, so the bar
    shows 100% only when everything is done.
    """
    if width < 1:
        raise ValueError(f"progress bar width must be at least 1, got {width}")
    if not math.isfinite(percent):
        percent = 0.0
    percent = min(100.0, max(0.0, percent))
    filled = math.floor(percent * width / 100)
    bar = FULL_BLOCK * filled + EMPTY_BLOCK * (width - filled)
    return f"[{bar}] {math.floor(percent)}% Complete"


def render_status(snapshot: RunSnapshot, *, now: float | None = None, max_rows: int = 50) -> str:
    """The seed's real-time status display, as lines without a trailing newline::

        [████████░░░░░░░░░░░░] 40% Complete
        2/5 done · 1 running · 1 retrying · 1 queued · 4.1s
        ├─ Site A: ✓ Complete (2.3s)
        ├─ Site B: ✓ Complete (1.8s)
        ├─ Site C: ⏳ Running... (4.1s)
        ├─ Site D: ⏳ Queued — waiting: limit api
        └─ Site E: ↻ Retrying (retry 1/3) — Connection timeout

    Line 1 is ``progress_bar(snapshot.percent)``. Line 2 counts finished tasks (succeeded,
    failed, skipped and cancelled all count as done) of all tasks, then the number in each of
    running, retrying, queued, waiting (pending), failed, skipped and cancelled when not zero,
    then the run's elapsed time once it has started. Running counts tasks that run themselves
    (``snapshot.running_tasks()``): a fan-out whose items run is not one, its items are. A run
    with model steps (``snapshot.usage``) has a third line, what they used and the budget:
    ``Tokens: 48k in / 3.1k out · $0.19 · budget: 51,210 of 50,000 tokens used — spent: model
    steps stopped``.

    Then one row per task, ``<label>: <mark>``, in document order. Marks:

    - succeeded: ``✓ Complete (2.3s)`` (the duration when known; ``after N attempts`` if retried)
    - running: ``⏳ Running... (4.1s)`` (time since it started, when known; from the second
      attempt on also ``attempt n/m``: ``⏳ Running... (4.1s, attempt 2/3)``)
    - running, waiting for a person (an ``approval`` task): ``🙋 Waiting for approval —
      <message> (since 4.1s, deadline <time>)`` (the deadline when it has a timeout)
    - queued: ``⏳ Queued``, plus ``— waiting: <waiting_for>`` when set
    - pending: ``… Waiting``
    - retrying: ``↻ Retrying (retry n/m)`` where n is the attempts made so far and m the
      attempts allowed, plus ``— <error>`` when the last attempt left one
    - failed: ``✗ Failed (<error>)``; after more than one attempt
      ``✗ Failed after 3 attempts (<error>)``
    - skipped: ``⊘ Skipped (<reason>)``; cancelled: ``⊘ Cancelled``, plus ``(<reason>)`` when set

    Errors and reasons are put on one line and cut to 80 characters. Fan-out children (tasks
    with a ``parent_id``) are nested under their parent::

        ├─ publish_all: ⏳ Running... (1.0s)
        │  ├─ publish_all[0]: ✓ Complete (0.5s)
        │  └─ publish_all[1]: ⏳ Running... (1.0s)
        └─ report: … Waiting

    The tree has at most ``max_rows`` lines. When there are more tasks, ``max_rows - 1`` are
    shown — running first, then retrying, then failed, then the rest in document order, with the
    parent of every shown child shown too — still in document order, and the last line says what
    was left out: ``└─ … and 12 more (10 done)``.

    A partial snapshot (``snapshot.partial``, from ``Engine.status``) gives the same display as
    the whole run when it holds every row the display keeps, each with its ancestors: the counts
    come from ``snapshot.task_counts``, the rows from ``snapshot.tasks``.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    now = time.time() if now is None else now
    lines = [progress_bar(snapshot.percent), _count_line(snapshot, now)]
    if snapshot.usage is not None:
        lines.append(usage_line(snapshot.usage))
    lines.extend(_tree_lines(snapshot, now, max_rows))
    return "\n".join(lines)


def _count_line(snapshot: RunSnapshot, now: float) -> str:
    counts = snapshot.counts()
    counts[TaskState.running] = snapshot.running_tasks()  # a fan-out's items, not the fan-out
    parts = [f"{snapshot.done}/{snapshot.total} done"]
    parts.extend(f"{counts[state]} {word}" for state, word in _COUNTED_STATES if counts[state])
    if snapshot.started_at is not None:
        parts.append(format_duration(snapshot.elapsed(now)))
    return " · ".join(parts)


def _task_mark(task: TaskSnapshot, now: float) -> str:
    state = task.state
    if state is TaskState.succeeded:
        details = [] if task.duration is None else [format_duration(task.duration)]
        if task.attempts > 1:
            details.append(f"after {task.attempts} attempts")
        return "✓ Complete" + (f" ({', '.join(details)})" if details else "")
    if task.awaits_approval:
        return waiting_mark(task, now, STATUS_TEXT_LIMIT)
    if state is TaskState.running:
        details = []
        if task.started_at is not None:
            details.append(format_duration(now - task.started_at))
        if task.attempts > 1:
            details.append(f"attempt {task.attempts}/{task.max_attempts}")
        return "⏳ Running..." + (f" ({', '.join(details)})" if details else "")
    if state is TaskState.queued:
        if not task.waiting_for:
            return "⏳ Queued"
        return f"⏳ Queued — waiting: {one_line(task.waiting_for, STATUS_TEXT_LIMIT)}"
    if state is TaskState.pending:
        return "… Waiting"
    if state is TaskState.retrying:
        mark = f"↻ Retrying (retry {task.attempts}/{task.max_attempts})"
        error = task_error(task, STATUS_TEXT_LIMIT)
        return mark + (f" — {error}" if error else "")
    if state is TaskState.failed:
        mark = "✗ Failed" + (f" after {task.attempts} attempts" if task.attempts > 1 else "")
        error = task_error(task, STATUS_TEXT_LIMIT)
        return mark + (f" ({error})" if error else "")
    if state is TaskState.skipped:
        reason = task_reason(task, "skipped", STATUS_TEXT_LIMIT)
        return "⊘ Skipped" + (f" ({reason})" if reason else "")
    reason = task_reason(task, "cancelled", STATUS_TEXT_LIMIT)
    return "⊘ Cancelled" + (f" ({reason})" if reason else "")


def _tree_lines(snapshot: RunSnapshot, now: float, max_rows: int) -> list[str]:
    ordered = sorted(snapshot.tasks, key=lambda task: task.position)
    by_id = {task.task_id: task for task in ordered}

    def ancestors(task: TaskSnapshot) -> list[TaskSnapshot]:
        found: list[TaskSnapshot] = []
        seen = {task.task_id}
        parent = by_id.get(task.parent_id) if task.parent_id else None
        while parent is not None and parent.task_id not in seen:
            found.append(parent)
            seen.add(parent.task_id)
            parent = by_id.get(parent.parent_id) if parent.parent_id else None
        return found

    if not snapshot.partial and len(ordered) <= max_rows:
        shown = {task.task_id for task in ordered}
    else:
        shown = _most_relevant(ordered, ancestors, budget=max_rows - 1)
    hidden = max(0, snapshot.total - len(shown))

    children: dict[str, list[TaskSnapshot]] = {}
    roots: list[TaskSnapshot] = []
    for task in ordered:
        if task.task_id not in shown:
            continue
        parents = ancestors(task)
        if parents:
            children.setdefault(parents[0].task_id, []).append(task)
        else:
            roots.append(task)

    lines: list[str] = []

    def emit(nodes: list[TaskSnapshot], indent: str, closes: bool) -> None:
        for index, node in enumerate(nodes):
            last = closes and index == len(nodes) - 1
            lines.append(f"{indent}{'└─' if last else '├─'} {node.label}: {_task_mark(node, now)}")
            emit(children.get(node.task_id, []), indent + ("   " if last else "│  "), True)

    emit(roots, "", closes=not hidden)
    if hidden:
        shown_done = sum(1 for task in ordered if task.task_id in shown and task.state.terminal)
        # a run another process executes may move between the reads of a partial snapshot
        done = max(0, snapshot.done - shown_done)
        lines.append(f"└─ … and {hidden} more ({done} done)")
    return lines


def _most_relevant(
    ordered: list[TaskSnapshot],
    ancestors: Callable[[TaskSnapshot], list[TaskSnapshot]],
    budget: int,
) -> set[str]:
    """Up to ``budget`` task ids, the most relevant first, each with its ancestors."""
    ranked = sorted(ordered, key=lambda task: (status_display_rank(task.state), task.position))
    return keep_status_rows(ranked, ancestors, budget)
