"""Build the tools' result models from engine snapshots, keeping answers bounded."""

from __future__ import annotations

import json
import mimetypes
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from multi_task_orchestrator.engine.engine import Engine
from multi_task_orchestrator.engine.graph import Plan, Validation
from multi_task_orchestrator.engine.issues import Issue
from multi_task_orchestrator.engine.reports.display import render_status
from multi_task_orchestrator.engine.reports.files import run_files
from multi_task_orchestrator.engine.reports.summary import render_summary
from multi_task_orchestrator.engine.state import RunSnapshot, TaskSnapshot, TaskState
from multi_task_orchestrator.tools.models import (
    Artifact,
    Failure,
    LimitInfo,
    OrchestrationStatus,
    PlanInfo,
    Problem,
    Results,
    TaskStatus,
    ValidationReport,
)

# Rows that matter most when a status must be cut short: what runs or failed first.
_ROW_PRIORITY = {
    TaskState.running: 0,
    TaskState.retrying: 0,
    TaskState.failed: 1,
    TaskState.queued: 2,
    TaskState.skipped: 3,
    TaskState.cancelled: 3,
    TaskState.pending: 4,
    TaskState.succeeded: 5,
}
STATUS_DISPLAY_ROWS = 30  # lines of the task tree in a status's `display`


def problem(issue: Issue) -> Problem:
    return Problem(
        message=issue.message,
        path=issue.path,
        line=issue.line,
        column=issue.column,
        hint=issue.hint,
    )


def plan_info(plan: Plan) -> PlanInfo:
    data = plan.to_dict()
    return PlanInfo(
        mode=data["mode"],
        task_count=data["task_count"],
        max_concurrent=data["max_concurrent"],
        stages=data["stages"],
        critical_path=data["critical_path"],
        limits={name: LimitInfo(**pool) for name, pool in data["limits"].items()},
        fan_outs=data["fan_outs"],
        description=plan.describe(),
    )


def validation_report(result: Validation) -> ValidationReport:
    return ValidationReport(
        ok=result.ok,
        errors=[problem(issue) for issue in result.errors],
        warnings=[problem(issue) for issue in result.warnings],
        plan=plan_info(result.plan) if result.plan else None,
    )


def task_status(task: TaskSnapshot) -> TaskStatus:
    return TaskStatus(
        id=task.task_id,
        name=task.label,
        type=task.type,
        state=task.state.value,
        parent=task.parent_id,
        attempts=task.attempts,
        max_attempts=task.max_attempts,
        duration_seconds=None if task.duration is None else round(task.duration, 3),
        error=task.error,
        error_class=task.error_class,
        reason=task.reason,
        waiting_for=task.waiting_for,
    )


async def snapshot_for_status(
    engine: Engine, orchestration_id: str, *, max_rows: int
) -> RunSnapshot:
    """What ``orchestration_status(..., max_rows=max_rows)`` needs of a run: every task
    counted, but only the tasks it shows read (``Engine.status``)."""
    return await engine.status(
        orchestration_id, display_rows=STATUS_DISPLAY_ROWS, top=max_rows, rank=_ROW_PRIORITY
    )


def orchestration_status(snapshot: RunSnapshot, *, max_rows: int) -> OrchestrationStatus:
    """The status with at most ``max_rows`` task rows, the most telling ones first.

    ``snapshot`` may be partial when it holds the tasks shown (``snapshot_for_status``).
    """
    now = time.time()
    tasks = snapshot.tasks
    total = snapshot.total
    shown = tasks
    if total > max_rows:
        ranked = sorted(tasks, key=lambda t: (_ROW_PRIORITY[t.state], t.position))[:max_rows]
        keep = {t.task_id for t in ranked}
        shown = [t for t in tasks if t.task_id in keep]
    counts = {state: n for state, n in snapshot.counts().items() if n}
    finished = snapshot.status.terminal
    if finished:
        next_step = f"call get_results(id='{snapshot.id}') for outputs and the summary"
    else:
        next_step = (
            f"call wait_for_orchestration(id='{snapshot.id}') to wait, or get_status again later"
        )
    return OrchestrationStatus(
        id=snapshot.id,
        name=snapshot.name,
        status=snapshot.status.value,
        finished=finished,
        percent=round(snapshot.percent, 1),
        done=snapshot.done,
        total=total,
        counts=counts,
        elapsed_seconds=round(snapshot.elapsed(now), 3),
        max_parallel=snapshot.max_parallel,
        error=snapshot.error,
        display=render_status(snapshot, now=now, max_rows=STATUS_DISPLAY_ROWS),
        tasks=[task_status(task) for task in shown],
        tasks_omitted=total - len(shown),
        next_step=next_step,
    )


def failures(snapshot: RunSnapshot) -> list[Failure]:
    bad = (TaskState.failed, TaskState.skipped, TaskState.cancelled)
    return [
        Failure(
            task=task.task_id,
            state=task.state.value,
            error=task.error,
            error_class=task.error_class,
            reason=task.reason,
            chain=list(task.chain),
        )
        for task in snapshot.tasks
        if task.state in bad
    ]


def artifacts(snapshot: RunSnapshot) -> list[Artifact]:
    """Files in the run's artifacts folder, each with its resource URI."""
    if not snapshot.run_dir:
        return []
    folder = Path(snapshot.run_dir) / "artifacts"
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.is_symlink():  # a link could point outside the run
            found.append(
                Artifact(
                    name=path.name,
                    uri=f"orchestration://{snapshot.id}/artifacts/{path.name}",
                    mime_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                    size=path.stat().st_size,
                )
            )
    return found


def results(
    snapshot: RunSnapshot,
    *,
    task_ids: Iterable[str] | None,
    offset: int,
    max_chars: int,
) -> Results:
    """Outputs of finished tasks from ``offset`` on, until ``max_chars`` of JSON is used."""
    finished = [t for t in snapshot.tasks if t.has_output]
    if task_ids is not None:
        wanted = set(task_ids)
        finished = [t for t in finished if t.task_id in wanted]
    else:  # a fan-out's output already lists its children's: do not send them twice
        with_output = {t.task_id for t in finished}
        finished = [t for t in finished if t.parent_id not in with_output]
    outputs: dict[str, Any] = {}
    used = 0
    note = None
    next_offset = None
    for index in range(offset, len(finished)):
        task = finished[index]
        text = json.dumps(task.output, default=str)
        if used + len(text) > max_chars:
            if not outputs:  # one output alone is too large: show its start
                outputs[task.task_id] = text[: max(0, max_chars - used)] + "…"
                note = (
                    f"the output of {task.task_id} has {len(text):,} characters; it is cut "
                    f"here. Read orchestration://{snapshot.id}/results for all of it."
                )
                index += 1
            next_offset = index if index < len(finished) else None
            break
        outputs[task.task_id] = task.output
        used += len(text)
    if next_offset is not None and note is None:
        note = (
            f"{len(outputs)} of {len(finished) - offset} outputs shown to stay under "
            f"{max_chars:,} characters; call get_results again with offset={next_offset}, or "
            f"read orchestration://{snapshot.id}/results"
        )
    existing = run_files(snapshot.run_dir)
    return Results(
        id=snapshot.id,
        name=snapshot.name,
        status=snapshot.status.value,
        summary=render_summary(snapshot, existing),
        outputs=outputs,
        failures=failures(snapshot),
        artifacts=artifacts(snapshot),
        truncated=next_offset is not None or note is not None,
        next_offset=next_offset,
        note=note,
        results_uri=f"orchestration://{snapshot.id}/results",
    )
