"""The whole run as JSON-able data: the content of ``aggregated_results.json``."""

from __future__ import annotations

import json
import operator
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from multi_task_orchestrator.engine.reports.text import iso, seconds_between
from multi_task_orchestrator.engine.state import RunSnapshot, TaskSnapshot, TaskState

# Each state's text: a member's .value goes through a slow descriptor, felt over 2,000 tasks.
_STATE_TEXT = {state: state.value for state in TaskState}


def aggregated_results(
    snapshot: RunSnapshot, outputs: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The whole run as JSON-able data (the content of ``aggregated_results.json``); each
    task's output is its snapshot's, or the one ``outputs`` has for it when given::

        {"id", "name", "status", "started_at", "finished_at", "duration", "max_parallel",
         "error", "counts": {"total", "pending", "queued", ..., "cancelled"},
         "tasks": {task_id: {"state", "type", "label", "parent_id", "attempts", "max_attempts",
                             "started_at", "finished_at", "duration", "error", "error_class",
                             "reason", "chain", "output"}}}

    Times are ISO 8601 UTC strings with milliseconds (``"2026-11-24T09:15:02.123Z"``) or None;
    durations are seconds rounded to 3 decimals, None until both ends are known. Tasks are in
    document order; ``output`` is None for a task that has none. A run with model steps also
    has ``"usage": {"input_tokens", "output_tokens", "cost_usd", "calls", "unpriced_calls",
    "budget"}`` after ``counts``: the totals of every attempt, retries included.
    """
    return {
        **_run_fields(snapshot),
        "tasks": {
            task.task_id: dict(zip(_TASK_FIELDS, _task_values(task, outputs), strict=True))
            for task in sorted(snapshot.tasks, key=_position)
        },
    }


def results_json(snapshot: RunSnapshot) -> str:
    """``aggregated_results(snapshot)`` as the indented text of ``aggregated_results.json``
    (``results_json_pieces`` joined)."""
    return "".join(results_json_pieces(snapshot))


def results_json_pieces(
    snapshot: RunSnapshot,
    tasks_per_piece: int = 500,
    *,
    outputs: Mapping[str, Any] | None = None,
) -> Iterator[str]:
    """The text of ``results_json`` (with ``outputs``, as ``aggregated_results`` takes them)
    in pieces, ``tasks_per_piece`` tasks at a time, for
    writing it without holding it whole: a 100,000-task run's results are ~40 MB of text,
    and the dict ``aggregated_results`` builds for them three times that.

    Written with orjson: the standard library's encoder drops to pure Python whenever it
    indents, ~5x slower over a few thousand tasks. A piece orjson refuses (an integer beyond 64
    bits in an output) is the standard library's text for it. Each piece is the text for its
    tasks, indented one level further, so the pieces joined are the text of the whole dict;
    they are made as they are read.
    """
    head = _run_fields(snapshot)
    tasks = sorted(snapshot.tasks, key=_position)
    yield _dumps(head)[:-2]  # without its closing "\n}"
    if not tasks:
        yield ',\n  "tasks": {}\n}'
    for start in range(0, len(tasks), tasks_per_piece):
        chunk = {
            task.task_id: dict(zip(_TASK_FIELDS, _task_values(task, outputs), strict=True))
            for task in tasks[start : start + tasks_per_piece]
        }
        inner = _dumps(chunk)[2:-2].replace("\n", "\n  ")  # "{\n" and "\n}" cut off
        opening = ',\n  "tasks": {\n  ' if start == 0 else ",\n  "
        yield opening + inner
    if tasks:
        yield "\n  }\n}"


def _dumps(value: dict[str, Any]) -> str:
    try:
        return orjson.dumps(value, default=str, option=_ORJSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)


_ORJSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
_TASK_FIELDS = (
    "state", "type", "label", "parent_id", "attempts", "max_attempts", "started_at",
    "finished_at", "duration", "error", "error_class", "reason", "chain", "output",
)  # fmt: skip


_position = operator.attrgetter("position")


def _run_fields(snapshot: RunSnapshot) -> dict[str, Any]:
    """Everything ``aggregated_results`` holds but ``tasks``, in its order."""
    fields = {
        "id": snapshot.id,
        "name": snapshot.name,
        "status": snapshot.status.value,
        "started_at": iso(snapshot.started_at),
        "finished_at": iso(snapshot.finished_at),
        "duration": seconds_between(snapshot.started_at, snapshot.finished_at),
        "max_parallel": snapshot.max_parallel,
        "error": snapshot.error,
        "counts": {"total": len(snapshot.tasks), **snapshot.counts()},
    }
    if snapshot.usage is not None:
        fields["usage"] = snapshot.usage.model_dump(mode="json")
    return fields


def _task_values(task: TaskSnapshot, outputs: Mapping[str, Any] | None) -> tuple[Any, ...]:
    """A task's entry in ``aggregated_results``: its values in ``_TASK_FIELDS`` order."""
    started, finished = task.started_at, task.finished_at
    if not task.has_output:
        output = None
    elif outputs is None:
        output = task.output
    else:
        output = outputs.get(task.task_id)
    return (
        _STATE_TEXT[task.state],
        task.type,
        task.label,
        task.parent_id,
        task.attempts,
        task.max_attempts,
        iso(started),
        iso(finished),
        seconds_between(started, finished),
        task.error,
        task.error_class,
        task.reason,
        list(task.chain),
        output,
    )
