"""The ``approval`` task type: wait for a person to approve or reject, then go on or fail.

The task shows as waiting for approval (its message, since when, until when) in the status,
and sends the run's ``approval_needed`` notification. ``approve_task`` / ``reject_task`` (MCP)
or ``orchestrator approve|reject`` (CLI) decide it. Approved, its output is
``{approved: true, note, decided_by, decided_at}``; rejected, it fails with the error class
``rejected``, which is never retried, and its dependents are skipped like after any failure.
With a ``timeout``, nobody answering in time decides as ``on_timeout`` says (reject by
default), ``decided_by: timeout``. The wait holds no concurrency slot and runs in the engine's
process whatever the backend; cancelling the task or the run stops it at once.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from multi_task_orchestrator.engine.approvals import TIMED_OUT
from multi_task_orchestrator.engine.document.units import Duration
from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.reports.text import format_duration, iso
from multi_task_orchestrator.engine.runners.base import RunContext, Runner, RunnerConfig

REJECTED = "rejected"  # the error class of a rejected (or timed out) approval


class ApprovalConfig(RunnerConfig):
    """Config of an ``approval`` task."""

    message: str = Field(
        min_length=1,
        description="what the person is asked, shown in the status and the notification; "
        "references like ${draft.output.title} are allowed",
    )
    timeout: Duration | None = Field(
        None, gt=0, description="how long to wait for a decision, e.g. 4h; none: for ever"
    )
    on_timeout: Literal["approve", "reject"] = Field(
        "reject", description="what happens when nobody decides within the timeout"
    )


class ApprovalRunner(Runner[ApprovalConfig]):
    """Waits at the engine's approval desk until the task is decided."""

    type_name: ClassVar[str] = "approval"
    listing_rank: ClassVar[int] = 65
    config_model: ClassVar[type[ApprovalConfig]] = ApprovalConfig
    summary: ClassVar[str] = (
        "Waits for a person to approve or reject (approve_task / reject_task, or "
        "'orchestrator approve'), with an optional timeout; rejected, it fails and its "
        "dependents are skipped."
    )
    example: ClassVar[dict[str, Any]] = {
        "id": "approve_post",
        "type": "approval",
        "config": {
            "message": "Publish ${draft.output.title}?",
            "timeout": "4h",
            "on_timeout": "reject",
        },
        "dependencies": ["draft"],
    }
    holds_slot: ClassVar[bool] = False
    runs_in_engine: ClassVar[bool] = True

    async def run(self, config: ApprovalConfig, ctx: RunContext) -> Any:
        desk = ctx.approvals
        if desk is None:
            raise TaskError("this engine has no approval desk to wait at", "internal")
        ctx.waiting(f"approval: {config.message}")
        ctx.log(f"waiting for approval: {config.message}")
        try:
            row = await desk.wait(
                ctx.orchestration_id,
                ctx.task_id,
                config.message,
                timeout=config.timeout,
                on_timeout="approved" if config.on_timeout == "approve" else "rejected",
            )
        finally:
            ctx.waiting(None)
        when = iso(row.decided_at)
        if row.decision != "approved":
            if row.decided_by == TIMED_OUT:
                waited = (row.deadline or row.requested_at) - row.requested_at
                text = f"timed out: nobody decided within {format_duration(waited)}"
            else:
                text = f"rejected by {row.decided_by}"
            note = f": {row.note}" if row.note else ""
            ctx.log(f"{text} at {when}{note}", level="warning")
            raise TaskError(f"{text}{note}", REJECTED)
        ctx.log(f"approved by {row.decided_by} at {when}")
        return {
            "approved": True,
            "note": row.note,
            "decided_by": row.decided_by,
            "decided_at": when,
        }


RUNNER = ApprovalRunner
