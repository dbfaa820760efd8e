"""The approval tools: approve_task and reject_task release a task of type ``approval`` that
waits for a person. The model asks the user first; the decision is recorded as made over MCP."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from pydantic import Field

from multi_task_orchestrator.engine import ApprovalRow, iso
from multi_task_orchestrator.tools.context import tool_context
from multi_task_orchestrator.tools.errors import friendly_errors
from multi_task_orchestrator.tools.models import ApprovalDecision
from multi_task_orchestrator.tools.strict import runs_tasks, strict_tool

IdInput = Annotated[str, Field(description="the orchestration id (or a unique prefix of it)")]
TaskInput = Annotated[str, Field(description="the id of the approval task that waits")]
NoteInput = Annotated[
    str | None,
    Field(max_length=2000, description="why: kept with the decision and shown in the report"),
]
DECIDED_BY = "mcp"


def tools() -> list[Tool]:
    """The approval tools. Both change what a run does next, once: not read-only, not
    idempotent (a second call is refused), and either lets the run's later tasks act."""
    return [
        strict_tool(
            approve_task,
            annotations=runs_tasks("Approve a waiting task"),  # the run goes on
        ),
        strict_tool(
            reject_task,
            # a rejection fails the task: the run's run_if any_failed tasks go on to act
            annotations=runs_tasks("Reject a waiting task"),
        ),
    ]


@friendly_errors
async def approve_task(
    id: IdInput, task_id: TaskInput, ctx: Context, note: NoteInput = None
) -> ApprovalDecision:
    """Approve an approval task that waits for a person (get_status shows it waiting, with
    its message): the task succeeds and the tasks after it run. Only call this when the user
    has said yes to that message; never decide for them.
    """
    engine = tool_context(ctx).engine
    row = await engine.approve(id, task_id, note=note, by=DECIDED_BY)
    return _decision(row)


@friendly_errors
async def reject_task(
    id: IdInput, task_id: TaskInput, ctx: Context, note: NoteInput = None
) -> ApprovalDecision:
    """Reject an approval task that waits for a person: the task fails (error class
    'rejected', never retried) and the tasks that depend on it are skipped. Only call this
    when the user has said no.
    """
    engine = tool_context(ctx).engine
    row = await engine.reject(id, task_id, note=note, by=DECIDED_BY)
    return _decision(row)


def _decision(row: ApprovalRow) -> ApprovalDecision:
    return ApprovalDecision(
        id=row.orchestration_id,
        task_id=row.task_id,
        decision=row.decision or "",
        note=row.note,
        decided_by=row.decided_by or DECIDED_BY,
        decided_at=iso(row.decided_at) or "",
        next_step=f"call wait_for_orchestration(id='{row.orchestration_id}') to follow the run",
    )
