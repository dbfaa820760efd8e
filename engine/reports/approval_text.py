"""How reports word an approval task: the status display's waiting mark and the summary's
``APPROVALS`` lines (who decided, when, and their note)."""

from __future__ import annotations

from multi_task_orchestrator.engine.reports.text import format_duration, iso, one_line
from multi_task_orchestrator.engine.state import RunSnapshot, TaskSnapshot


def waiting_mark(task: TaskSnapshot, now: float, limit: int) -> str:
    """``🙋 Waiting for approval — Publish? (since 4.1s, deadline 2026-12-02T18:00:00.000Z)``
    for a task that ``awaits_approval``."""
    approval = task.approval
    assert approval is not None
    details = [f"since {format_duration(max(0.0, now - approval.requested_at))}"]
    if approval.deadline is not None:
        details.append(f"deadline {iso(approval.deadline)}")
    message = one_line(approval.message, limit)
    return f"🙋 Waiting for approval — {message} ({', '.join(details)})"


def approval_lines(snapshot: RunSnapshot, limit: int) -> list[str]:
    """One line per approval task that asked, in document order: ``- gate: approved by cli at
    <time>: <note>``, ``- gate: rejected by mcp at <time>``, ``- gate: waiting since <time>``;
    a decision its timeout made says ``by its timeout``."""
    lines = []
    for task in sorted(snapshot.tasks, key=lambda task: task.position):
        approval = task.approval
        if approval is None:
            continue
        if approval.decision is None:
            lines.append(f"- {task.task_id}: waiting since {iso(approval.requested_at)}")
            continue
        by = "its timeout" if approval.decided_by == "timeout" else approval.decided_by
        note = f": {one_line(approval.note, limit)}" if approval.note else ""
        when = iso(approval.decided_at)
        lines.append(f"- {task.task_id}: {approval.decision} by {by} at {when}{note}")
    return lines
