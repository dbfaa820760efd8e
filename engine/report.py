"""What a run looks like to people and to programs: the seed's live status display and summary
report, the aggregated JSON results, the execution log, and writing those into a run's folder.

Everything here is a pure function of a ``RunSnapshot`` (and its event records) except
``write_run_files``, which writes ``aggregated_results.json``, ``execution_log.txt`` and
``summary.txt`` atomically.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import operator
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson

from multi_task_orchestrator.engine.state import (
    EventRecord,
    RunSnapshot,
    RunStatus,
    TaskSnapshot,
    TaskState,
)

RESULTS_FILE = "aggregated_results.json"
LOG_FILE = "execution_log.txt"
SUMMARY_FILE = "summary.txt"
REPORT_FILE = "report.html"  # written by engine.report_html

RULE = "═" * 39
FULL_BLOCK = "█"
EMPTY_BLOCK = "░"

# How long a piece of free text (an error, a reason) may be on one line of each display.
STATUS_TEXT_LIMIT = 80
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

# The order in which the status display keeps rows when it has to leave some out.
_RELEVANCE = {TaskState.running: 0, TaskState.retrying: 1, TaskState.failed: 2}
_OTHERS = 3

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

_LOG_LEVEL_NAMES = {"warning": "WARN"}

# The states the summary lists under FAILURES.
_FAILURE_STATES = frozenset({TaskState.failed, TaskState.skipped, TaskState.cancelled})
# Each state's text: a member's .value goes through a slow descriptor, felt over 2,000 tasks.
_STATE_TEXT = {state: state.value for state in TaskState}


# --- small pieces ---------------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """A duration for people: ``"2.3s"`` under a minute, ``"1m 05s"`` under an hour, else
    ``"1h 02m"``. Negative or non-finite input shows as ``"0.0s"``."""
    if not math.isfinite(seconds) or seconds < 0:
        seconds = 0.0
    if seconds < 59.95:  # anything higher would print as "60.0s"
        return f"{seconds:.1f}s"
    total = round(seconds)
    if total < 3600:
        minutes, secs = divmod(total, 60)
        return f"{minutes}m {secs:02d}s"
    hours, rest = divmod(total, 3600)
    return f"{hours}h {rest // 60:02d}m"


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


def _one_line(text: str, limit: int) -> str:
    """``text`` with every run of whitespace (newlines included) made one space, cut to
    ``limit`` characters with an ellipsis, at a space when one is near the end."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 3 // 4 else cut) + "…"


def _without_prefix(text: str, prefix: str) -> str:
    """``text`` without a leading ``"<prefix>:"`` (the display already says it)."""
    stripped = text.strip()
    if stripped.lower().startswith(prefix + ":"):
        return stripped[len(prefix) + 1 :].strip()
    return stripped


def _iso(timestamp: float | None) -> str | None:
    """An epoch time as ISO 8601 UTC with milliseconds: ``"2026-11-24T09:15:02.123Z"``."""
    if timestamp is None:
        return None
    # Split as datetime.fromtimestamp does (microseconds rounded half to even), so the text is
    # the same as datetime's isoformat, whose milliseconds cut the microseconds down.
    fraction, whole = math.modf(timestamp)
    second, micros = int(whole), round(fraction * 1e6)
    if not 0 <= micros < 1_000_000:
        carry = micros // 1_000_000
        second, micros = second + carry, micros - carry * 1_000_000
    return _iso_second(second) + _MILLISECONDS[micros // 1000]


_MILLISECONDS = [f".{millis:03d}Z" for millis in range(1000)]


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    """A whole epoch second as ``"2026-11-24T09:15:02"`` (UTC); a run's events share few."""
    return datetime.fromtimestamp(second, tz=UTC).isoformat()[:19]


def _seconds_between(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, end - start), 3)


# --- the live status display ----------------------------------------------------------------


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
    (``snapshot.running_tasks()``): a fan-out whose items run is not one, its items are.

    Then one row per task, ``<label>: <mark>``, in document order. Marks:

    - succeeded: ``✓ Complete (2.3s)`` (the duration when known; ``after N attempts`` if retried)
    - running: ``⏳ Running... (4.1s)`` (time since it started, when known; from the second
      attempt on also ``attempt n/m``: ``⏳ Running... (4.1s, attempt 2/3)``)
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
        return f"⏳ Queued — waiting: {_one_line(task.waiting_for, STATUS_TEXT_LIMIT)}"
    if state is TaskState.pending:
        return "… Waiting"
    if state is TaskState.retrying:
        mark = f"↻ Retrying (retry {task.attempts}/{task.max_attempts})"
        error = _task_error(task, STATUS_TEXT_LIMIT)
        return mark + (f" — {error}" if error else "")
    if state is TaskState.failed:
        mark = "✗ Failed" + (f" after {task.attempts} attempts" if task.attempts > 1 else "")
        error = _task_error(task, STATUS_TEXT_LIMIT)
        return mark + (f" ({error})" if error else "")
    if state is TaskState.skipped:
        reason = _task_reason(task, "skipped", STATUS_TEXT_LIMIT)
        return "⊘ Skipped" + (f" ({reason})" if reason else "")
    reason = _task_reason(task, "cancelled", STATUS_TEXT_LIMIT)
    return "⊘ Cancelled" + (f" ({reason})" if reason else "")


def _task_error(task: TaskSnapshot, limit: int) -> str:
    if task.error and task.error.strip():
        return _one_line(task.error, limit)
    return task.error_class or ""


def _task_reason(task: TaskSnapshot, state_word: str, limit: int) -> str:
    if not task.reason:
        return ""
    return _one_line(_without_prefix(task.reason, state_word), limit)


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


def status_display_rank(state: TaskState) -> int:
    """Where the status display ranks a task in ``state`` when it must leave rows out: lower
    ranks are kept first, and tasks of one rank go by position."""
    return _RELEVANCE.get(state, _OTHERS)


class StatusRow(Protocol):
    """What choosing the status display's rows reads of a task (a TaskSnapshot, a scheduler
    node)."""

    @property
    def task_id(self) -> str: ...

    @property
    def state(self) -> TaskState: ...


_Row = TypeVar("_Row", bound=StatusRow)


def keep_status_rows(
    ranked: Iterable[_Row], ancestors: Callable[[_Row], list[_Row]], budget: int
) -> set[str]:
    """The ids of the rows the status display keeps out of ``ranked`` (tasks ordered by
    ``(status_display_rank(state), position)``): each in turn with its ancestors when they all
    still fit in ``budget``. ``ranked`` is read only until the budget is used up."""
    chosen: set[str] = set()
    for task in ranked:
        if len(chosen) >= budget:
            break
        needed = {item.task_id for item in [task, *ancestors(task)]} - chosen
        if len(chosen) + len(needed) <= budget:
            chosen |= needed
    return chosen


def _most_relevant(
    ordered: list[TaskSnapshot],
    ancestors: Callable[[TaskSnapshot], list[TaskSnapshot]],
    budget: int,
) -> set[str]:
    """Up to ``budget`` task ids, the most relevant first, each with its ancestors."""
    ranked = sorted(ordered, key=lambda task: (status_display_rank(task.state), task.position))
    return keep_status_rows(ranked, ancestors, budget)


# --- the summary report ---------------------------------------------------------------------


def render_summary(
    snapshot: RunSnapshot, output_files: Sequence[str | Path] = (), *, now: float | None = None
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
    ``Parallel`` is ``snapshot.max_parallel``. An ``Error:`` line follows when
    ``snapshot.error`` is set.

    ``FAILURES`` lists every failed, skipped and cancelled task in document order, as
    ``- <task_id> (<label>): <what happened>`` (the label only when it differs from the id). A
    failed task shows its error, then in brackets its error class when the message does not
    already say it (and it is not the generic ``error``) and its attempts when more than one.
    A skipped task shows ``skipped: <reason>`` (or its chain when no reason was recorded), a
    cancelled one ``cancelled`` with its reason when set. ``OUTPUTS`` lists ``output_files`` as
    given; each section appears only when it has lines.
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
    if snapshot.error:
        lines.append(_field("Error", _one_line(snapshot.error, SUMMARY_TEXT_LIMIT)))

    failed = [task for task in snapshot.tasks if task.state in _FAILURE_STATES]
    failures = [_failure_line(task) for task in sorted(failed, key=_position)]
    if failures:
        lines.extend(["", "FAILURES:", *failures])
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
        detail = _task_error(task, limit) or "failed"
        notes = []
        error_class = task.error_class
        if error_class and error_class != "error" and error_class.lower() not in detail.lower():
            notes.append(error_class)
        if task.attempts > 1:
            notes.append(f"{task.attempts} attempts")
        if notes:
            detail += f" [{', '.join(notes)}]"
    elif task.state is TaskState.skipped:
        reason = _task_reason(task, "skipped", SUMMARY_TEXT_LIMIT)
        if not reason and task.chain:
            reason = "chain " + " -> ".join(task.chain)
        detail = "skipped" + (f": {reason}" if reason else "")
    else:
        reason = _task_reason(task, "cancelled", SUMMARY_TEXT_LIMIT)
        detail = "cancelled" + (f": {reason}" if reason else "")
    return f"- {name}: {detail}"


# --- aggregated results and the log ---------------------------------------------------------


def aggregated_results(snapshot: RunSnapshot) -> dict[str, Any]:
    """The whole run as JSON-able data (the content of ``aggregated_results.json``)::

        {"id", "name", "status", "started_at", "finished_at", "duration", "max_parallel",
         "error", "counts": {"total", "pending", "queued", ..., "cancelled"},
         "tasks": {task_id: {"state", "type", "label", "parent_id", "attempts", "max_attempts",
                             "started_at", "finished_at", "duration", "error", "error_class",
                             "reason", "chain", "output"}}}

    Times are ISO 8601 UTC strings with milliseconds (``"2026-11-24T09:15:02.123Z"``) or None;
    durations are seconds rounded to 3 decimals, None until both ends are known. Tasks are in
    document order; ``output`` is None for a task that has none.
    """
    return {
        **_run_fields(snapshot),
        "tasks": {
            task.task_id: dict(zip(_TASK_FIELDS, _task_values(task), strict=True))
            for task in sorted(snapshot.tasks, key=_position)
        },
    }


def results_json(snapshot: RunSnapshot) -> str:
    """``aggregated_results(snapshot)`` as the indented text of ``aggregated_results.json``.

    Written with orjson: the standard library's encoder drops to pure Python whenever it
    indents, ~5x slower over a few thousand tasks. A value orjson refuses (an integer beyond 64
    bits) takes the standard library's way.
    """
    results = aggregated_results(snapshot)
    try:
        return orjson.dumps(results, default=str, option=_ORJSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(results, indent=2, ensure_ascii=False, default=str)


_ORJSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
_TASK_FIELDS = (
    "state", "type", "label", "parent_id", "attempts", "max_attempts", "started_at",
    "finished_at", "duration", "error", "error_class", "reason", "chain", "output",
)  # fmt: skip


_position = operator.attrgetter("position")


def _run_fields(snapshot: RunSnapshot) -> dict[str, Any]:
    """Everything ``aggregated_results`` holds but ``tasks``, in its order."""
    return {
        "id": snapshot.id,
        "name": snapshot.name,
        "status": snapshot.status.value,
        "started_at": _iso(snapshot.started_at),
        "finished_at": _iso(snapshot.finished_at),
        "duration": _seconds_between(snapshot.started_at, snapshot.finished_at),
        "max_parallel": snapshot.max_parallel,
        "error": snapshot.error,
        "counts": {"total": len(snapshot.tasks), **snapshot.counts()},
    }


def _task_values(task: TaskSnapshot) -> tuple[Any, ...]:
    """A task's entry in ``aggregated_results``: its values in ``_TASK_FIELDS`` order."""
    started, finished = task.started_at, task.finished_at
    return (
        _STATE_TEXT[task.state],
        task.type,
        task.label,
        task.parent_id,
        task.attempts,
        task.max_attempts,
        _iso(started),
        _iso(finished),
        _seconds_between(started, finished),
        task.error,
        task.error_class,
        task.reason,
        list(task.chain),
        task.output if task.has_output else None,
    )


def render_log(events: Iterable[EventRecord]) -> str:
    """``execution_log.txt``: one line per event in ``seq`` order, without a trailing newline::

        2026-11-24T09:15:02.123Z INFO  [extract_site_a] started: attempt 1 attempt=1
        2026-11-24T09:15:04.456Z ERROR [extract_b] failed: Connection timeout error_class=network
        2026-11-24T09:15:05.000Z INFO  [orchestration] finished: run failed

    The level is upper-cased and padded to 5 (``warning`` shows as ``WARN``); events without a
    task show ``[orchestration]``. Newlines in the message become ``\\n``. Each ``data`` item
    follows as `` key=value``: strings as they are unless empty or holding spaces or quotes
    (then JSON-quoted), everything else as compact JSON.
    """
    return "\n".join(log_lines(events))


def log_lines(events: Iterable[EventRecord]) -> list[str]:
    return list(map(_log_line, sorted(events, key=_seq)))


_seq = operator.attrgetter("seq")


def _log_line(event: EventRecord) -> str:
    message = event.message
    if "\n" in message or "\r" in message:
        message = message.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    line = (
        f"{_iso(event.ts)} {_log_level(event.level)} [{event.task_id or 'orchestration'}] "
        f"{event.kind}: {message}"
    )
    if event.data:
        line += "".join(f" {key}={_log_value(value)}" for key, value in event.data.items())
    return line


@functools.lru_cache(maxsize=64)
def _log_level(level: str) -> str:
    """The level as the log shows it: upper-cased (``warning`` as ``WARN``), padded to 5."""
    return f"{_LOG_LEVEL_NAMES.get(level.lower(), level.upper()):<5}"


# What json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str) uses.
_LOG_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def _log_value(value: Any) -> str:
    # split() cuts at exactly the characters str.isspace() calls whitespace, and gives [value]
    # only for a value that is not empty and has none.
    if isinstance(value, str) and '"' not in value and value.split(None, 1) == [value]:
        return value
    return _LOG_ENCODER.encode(value)


# --- the run's files ------------------------------------------------------------------------


def run_files(run_dir: str | Path | None) -> list[str]:
    """The result files a finished run wrote into ``run_dir`` (those that exist), as paths."""
    if not run_dir:
        return []
    folder = Path(run_dir)
    return [
        str(folder / name)
        for name in (RESULTS_FILE, LOG_FILE, SUMMARY_FILE, REPORT_FILE)
        if (folder / name).exists()
    ]


def write_run_files(
    snapshot: RunSnapshot,
    log: Iterable[str],
    run_dir: Path,
    *,
    now: float | None = None,
) -> list[Path]:
    """Write ``aggregated_results.json``, ``execution_log.txt`` (``log``: its lines, as
    ``log_lines`` renders events) and ``summary.txt`` into ``run_dir`` (created if missing) and
    return their absolute paths in that order.

    The summary lists the three paths under ``OUTPUTS``. Each file is written to a temporary
    file in the same folder, flushed and fsynced, then renamed over the target, so a reader (or
    a crash) never sees half a file. The files are readable by their owner only (mode 0600),
    as they may hold task outputs.
    """
    folder = Path(run_dir).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / RESULTS_FILE, folder / LOG_FILE, folder / SUMMARY_FILE]
    results_path, log_path, summary_path = paths

    # Joined once with their last newline: these texts can be megabytes.
    _write_atomic(results_path, results_json(snapshot) + "\n")
    _write_atomic(log_path, "\n".join([*log, ""]))  # no events: empty
    _write_atomic(summary_path, render_summary(snapshot, paths, now=now) + "\n")
    _fsync_folder(folder)
    return paths


def _write_atomic(path: Path, text: str) -> None:
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _fsync_folder(folder: Path) -> None:
    """Make the renames durable. Best effort: some platforms and filesystems cannot open or
    fsync a directory, and the files themselves are already complete on disk."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
