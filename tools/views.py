"""Build the tools' result models from engine snapshots, keeping answers bounded."""

from __future__ import annotations

import mimetypes
import time
from pathlib import Path

from multi_task_orchestrator.engine import (
    Engine,
    Issue,
    Plan,
    RunSnapshot,
    TaskSnapshot,
    TaskState,
    Validation,
    budget_text,
    iso,
    render_status,
    usage_text,
)
from multi_task_orchestrator.tools.models import (
    ApprovalInfo,
    Artifact,
    BudgetAmount,
    BudgetInfo,
    Failure,
    LimitInfo,
    OrchestrationStatus,
    PlanInfo,
    Problem,
    TaskStatus,
    UsageInfo,
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
PLAN_STAGES_SHOWN = 20  # stages of a plan listed in an answer
PLAN_IDS_SHOWN = 50  # task ids of one list (a stage, the critical path, a limit) in an answer
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
    """The plan for an answer: a 10,000-task plan in full is ~0.5 MB, which the model cannot
    use and the server would spend a loop-blocking moment serialising; past PLAN_STAGES_SHOWN
    stages and PLAN_IDS_SHOWN ids per list it is shown in part, ``left_out`` saying what."""
    ids = PLAN_IDS_SHOWN
    path = plan.critical_path
    shown_path = path if len(path) <= ids else [*path[: ids // 2], *path[-(ids // 2) :]]
    return PlanInfo(
        mode=plan.mode,
        task_count=plan.task_count,
        max_concurrent=plan.max_concurrent,
        stage_count=len(plan.stages),
        stages=[list(stage[:ids]) for stage in plan.stages[:PLAN_STAGES_SHOWN]],
        critical_path_length=len(path),
        critical_path=list(shown_path),
        limits={
            name: LimitInfo(
                concurrency=pool["concurrency"], rate=pool["rate"], tasks=list(pool["tasks"][:ids])
            )
            for name, pool in plan.limits.items()
        },
        fan_outs=list(plan.fan_outs[:ids]),
        description=plan.describe(max_stages=PLAN_STAGES_SHOWN, max_ids=ids),
        left_out=_left_out_of(plan),
    )


def _left_out_of(plan: Plan) -> str | None:
    ids = PLAN_IDS_SHOWN
    parts = []
    if len(plan.stages) > PLAN_STAGES_SHOWN:
        parts.append(f"stages {PLAN_STAGES_SHOWN + 1:,}–{len(plan.stages):,}")
    cut_stages = sum(1 for stage in plan.stages[:PLAN_STAGES_SHOWN] if len(stage) > ids)
    if cut_stages:
        parts.append(f"the ids past the first {ids} of {_count(cut_stages, 'stage')}")
    if len(plan.critical_path) > ids:
        middle = len(plan.critical_path) - 2 * (ids // 2)
        parts.append(f"the middle {middle:,} tasks of the critical path")
    cut_limits = [name for name, pool in plan.limits.items() if len(pool["tasks"]) > ids]
    if cut_limits:
        parts.append(f"the tasks past the first {ids} of limit(s) {', '.join(cut_limits)}")
    if len(plan.fan_outs) > ids:
        parts.append(f"fan-outs past the first {ids}")
    if not parts:
        return None
    return (
        f"this plan is large: {'; '.join(parts)} are left out of this answer; "
        "`orchestrator validate FILE` prints the whole plan"
    )


def _count(count: int, noun: str) -> str:
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


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
        approval=approval_info(task),
    )


def approval_info(task: TaskSnapshot) -> ApprovalInfo | None:
    approval = task.approval
    if approval is None:
        return None
    return ApprovalInfo(
        message=approval.message,
        waiting=task.awaits_approval,
        requested_at=iso(approval.requested_at) or "",
        deadline=iso(approval.deadline),
        decision=approval.decision,
        note=approval.note,
        decided_by=approval.decided_by,
        decided_at=iso(approval.decided_at),
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
        asking = [task.task_id for task in snapshot.tasks if task.awaits_approval]
        if asking:
            listed = ", ".join(asking[:10]) + (", ..." if len(asking) > 10 else "")
            who = (
                f"task {asking[0]} waits"
                if len(asking) == 1
                else f"{len(asking)} tasks wait ({listed})"
            )
            next_step = (
                f"{who} for a person: ask the user, then call approve_task or "
                f"reject_task(id='{snapshot.id}', task_id='{asking[0]}'); or {next_step}"
            )
    usage, budget = usage_info(snapshot)
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
        usage=usage,
        budget=budget,
        next_step=next_step,
    )


def usage_info(snapshot: RunSnapshot) -> tuple[UsageInfo | None, BudgetInfo | None]:
    """The run's model usage and budget for an answer (None, None without model steps)."""
    usage = snapshot.usage
    if usage is None:
        return None, None
    info = UsageInfo(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=usage.cost_usd,
        calls=usage.calls,
        unpriced_calls=usage.unpriced_calls,
        text=usage_text(usage),
    )
    state = usage.budget
    if state is None:
        return info, None
    return info, BudgetInfo(
        tokens=BudgetAmount(**state.tokens.model_dump()) if state.tokens else None,
        cost_usd=BudgetAmount(**state.cost_usd.model_dump()) if state.cost_usd else None,
        spent=state.spent,
        text=budget_text(state),
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
