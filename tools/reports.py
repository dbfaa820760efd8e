"""The ``get_report`` tool: a run's summary and its timeline picture (PNG), for clients that
show images inline; ``orchestration://{id}/report`` serves the full HTML report."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from mcp.types import ImageContent, TextContent

from multi_task_orchestrator.engine import Engine, build_report, render_summary, run_files
from multi_task_orchestrator.tools.context import tool_context
from multi_task_orchestrator.tools.errors import friendly_errors
from multi_task_orchestrator.tools.orchestrations import IdInput
from multi_task_orchestrator.tools.strict import read_only, strict_tool

if TYPE_CHECKING:  # the picture's modules bring the browser runner's: imported on use
    from multi_task_orchestrator.engine import BrowserSettings


def tools() -> list[Tool]:
    """The report tool."""
    return [
        strict_tool(
            get_report,
            annotations=read_only("Report with timeline"),
        )
    ]


@friendly_errors
async def get_report(id: IdInput, ctx: Context) -> list[TextContent | ImageContent]:
    """A run's summary (totals, failures, critical path, waits) plus its timeline as a PNG
    image: one row per task, bars per attempt coloured by outcome, waiting for slots and rate
    limits hatched, retries and backoff visible, the critical path marked in orange.

    Use it to show the user where the time went. The full HTML report (timeline, every task,
    failures with their chains, links to files) is the resource orchestration://{id}/report.
    When no browser is available to draw the PNG, the text says why and the HTML still works.
    """
    from multi_task_orchestrator.engine import BrowserNotFound, RasterizeError, svg_to_png

    engine = tool_context(ctx).engine
    snapshot = await engine.snapshot(id)
    await engine.settled(snapshot.id)  # its files are all written
    report = await build_report(engine.store, snapshot)
    timeline = report.timeline
    lines = [render_summary(snapshot, run_files(snapshot.run_dir))]
    if timeline.critical_path:
        lines.append("Critical path: " + " -> ".join(timeline.critical_path))
    if timeline.barrier_waits:
        held = ", ".join(
            f"{wait.task_id} {wait.seconds:.2f}s for {wait.held_by}"
            for wait in timeline.barrier_waits[:10]
        )
        lines.append(f"Waited at stage barriers: {held}")
    if timeline.note:
        lines.append(f"Timeline: {timeline.note}")
    lines.append(f"Full report (HTML): orchestration://{snapshot.id}/report")
    blocks: list[TextContent | ImageContent] = []
    try:
        png = await svg_to_png(report.svg, _browser_settings(engine))
    except (BrowserNotFound, RasterizeError) as exc:
        lines.append(f"No timeline picture: {exc}")
    else:
        blocks.append(_image(png))
    return [TextContent(type="text", text="\n".join(lines)), *blocks]


def _browser_settings(engine: Engine) -> BrowserSettings | None:
    """The Chromium the engine's browser runner is set to launch (None: found as usual)."""
    from multi_task_orchestrator.engine import BrowserSettings

    for runner in engine.runners().values():
        if isinstance(runner.settings, BrowserSettings):
            return runner.settings
    return None


def _image(png: bytes) -> ImageContent:
    return ImageContent(type="image", data=base64.b64encode(png).decode(), mime_type="image/png")
