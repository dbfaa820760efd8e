"""The JSON body of a notification: which run, its status and counts, a one-line summary and
its failed tasks (their messages already redacted, as every snapshot's are)."""

from __future__ import annotations

import time
from typing import Any

from multi_task_orchestrator.engine.reports.text import format_duration, iso, one_line
from multi_task_orchestrator.engine.state import RunSnapshot, RunStatus, TaskSnapshot, TaskState
from multi_task_orchestrator.engine.store import ApprovalRow

ERROR_CHARS = 500  # a failed task's message in a body is cut to this


def run_event(snapshot: RunSnapshot) -> str:
    """The event a run's end is: ``finished`` when it succeeded, else ``failed``."""
    return "finished" if snapshot.status is RunStatus.succeeded else "failed"


def run_body(event: str, snapshot: RunSnapshot) -> dict[str, Any]:
    """The body sent when the run ends."""
    counts = {state: number for state, number in snapshot.counts().items() if number}
    failed = [_failed(task) for task in snapshot.tasks if task.state is TaskState.failed]
    return {
        "event": event,
        "run_id": snapshot.id,
        "name": snapshot.name,
        "status": snapshot.status.value,
        "counts": counts,
        "summary": summary_line(snapshot),
        "failed_tasks": failed,
        "error": snapshot.error,
        "sent_at": iso(time.time()),
    }


def task_body(
    run_id: str, name: str, task_id: str, error_class: str | None, error: str | None
) -> dict[str, Any]:
    """The body sent when one task failed for good."""
    failed = {
        "task_id": task_id,
        "error_class": error_class,
        "error": one_line(error or "", ERROR_CHARS),
    }
    return {
        "event": "task_failed",
        "run_id": run_id,
        "name": name,
        "status": "running",
        "summary": f"{name}: task {task_id} failed ({error_class or 'error'})",
        "failed_tasks": [failed],
        "sent_at": iso(time.time()),
    }


def approval_body(name: str, row: ApprovalRow) -> dict[str, Any]:
    """The body sent when an approval task starts waiting for a person."""
    return {
        "event": "approval_needed",
        "run_id": row.orchestration_id,
        "name": name,
        "status": "running",
        "summary": f"{name}: task {row.task_id} waits for approval: {one_line(row.message, 200)}",
        "task_id": row.task_id,
        "message": row.message,
        "requested_at": iso(row.requested_at),
        "deadline": iso(row.deadline),
        "approve": f"orchestrator approve {row.orchestration_id} {row.task_id}",
        "reject": f"orchestrator reject {row.orchestration_id} {row.task_id}",
        "sent_at": iso(time.time()),
    }


def summary_line(snapshot: RunSnapshot) -> str:
    """E.g. ``nightly: succeeded, 3 of 3 tasks succeeded in 1.2s``."""
    counts = snapshot.counts()
    took = ""
    if snapshot.finished_at is not None:
        started = snapshot.started_at or snapshot.created_at
        took = f" in {format_duration(snapshot.finished_at - started)}"
    return (
        f"{snapshot.name}: {snapshot.status.value}, {counts[TaskState.succeeded.value]} of "
        f"{snapshot.total} tasks succeeded{took}"
    )


def _failed(task: TaskSnapshot) -> dict[str, Any]:
    return task_body("", "", task.task_id, task.error_class, task.error)["failed_tasks"][0]
