"""What the live view draws of one run, as JSON: the status rows, the timeline (waiting, running,
backing off, the critical path), failures with their chains and artifacts.

One builder serves both faces of the view: the ``/ui`` pages of ``orchestrator serve --http``
fetch it from ``/ui/api/runs/{id}``, and the MCP App reads the same document as the resource
``orchestration://{id}/live`` through its host (after ``get_status`` for the live numbers).
Everything comes from engine snapshots, which the engine has already redacted.
"""

from __future__ import annotations

import time
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from pydantic import BaseModel, Field

from multi_task_orchestrator.engine import Engine, UnknownOrchestration, build_report, iso
from multi_task_orchestrator.tools.context import tool_context
from multi_task_orchestrator.tools.models import Artifact, Failure, OrchestrationStatus
from multi_task_orchestrator.tools.views import artifacts, failures, orchestration_status

LIVE_ROWS = 500  # task rows a live page lists; the timeline collapses beyond its own limit
LIVE_URI = "orchestration://{id}/live"


class SpanView(BaseModel):
    """One bar of a timeline row; times in seconds from the run's start."""

    kind: str = Field(description="wait, run, backoff or envelope")
    start: float
    end: float
    attempt: int = 0
    outcome: str | None = None
    reason: str | None = None


class TimelineRow(BaseModel):
    key: str
    label: str
    kind: str = Field(description="task, group (a collapsed fan-out) or others")
    state: str
    depth: int = 0
    critical: bool = False
    attempts: int = 0
    members: int = 1
    spans: list[SpanView] = Field(default_factory=list)


class TimelineView(BaseModel):
    duration: float
    ticks: list[float]
    rows: list[TimelineRow]
    critical_path: list[str]
    note: str | None = None


class LiveRun(BaseModel):
    """Everything one page of the live view shows about a run."""

    status: OrchestrationStatus
    created_at: str
    timeline: TimelineView | None = None
    failures: list[Failure] = Field(default_factory=list)
    artifacts: list[Artifact] = Field(default_factory=list)


async def live_run(engine: Engine, orchestration_id: str) -> LiveRun:
    """The live view of a run; UnknownOrchestration when there is none by that id."""
    snapshot = await engine.snapshot(orchestration_id)
    report = await build_report(engine.store, snapshot, now=time.time())
    timeline = report.timeline
    return LiveRun(
        status=orchestration_status(snapshot, max_rows=LIVE_ROWS),
        created_at=iso(snapshot.created_at) or "",
        timeline=TimelineView(
            duration=round(timeline.duration, 3),
            ticks=[round(tick, 3) for tick in timeline.ticks],
            rows=[
                TimelineRow(
                    key=row.key,
                    label=row.label,
                    kind=row.kind,
                    state=row.state,
                    depth=row.depth,
                    critical=row.critical,
                    attempts=row.attempts,
                    members=row.members,
                    spans=[
                        SpanView(
                            kind=span.kind,
                            start=round(span.start, 3),
                            end=round(span.end, 3),
                            attempt=span.attempt,
                            outcome=span.outcome,
                            reason=span.reason,
                        )
                        for span in row.spans
                    ],
                )
                for row in timeline.rows
            ],
            critical_path=list(timeline.critical_path),
            note=timeline.note,
        ),
        failures=failures(snapshot),
        artifacts=artifacts(snapshot),
    )


def register(mcp: MCPServer[Any]) -> None:
    """Add ``orchestration://{id}/live``, which the MCP App reads through its host."""
    mcp.resource(
        LIVE_URI,
        name="live",
        description="What the live view draws: status rows, timeline, failures, artifacts (JSON).",
        mime_type="application/json",
    )(read_live)


async def read_live(id: str, ctx: Context) -> str:
    try:
        view = await live_run(tool_context(ctx).engine, id)
    except UnknownOrchestration as exc:
        raise ResourceNotFoundError(str(exc)) from None
    return view.model_dump_json(exclude_none=True)
