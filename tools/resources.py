"""Resources: an orchestration's status, full results, log, summary and artifacts.

``orchestration://{id}`` (status JSON), ``.../results`` (every output, unbounded),
``.../log`` (the execution log), ``.../summary`` (the summary report), ``.../report`` (the
HTML report with the timeline) and
``.../artifacts/{name}`` (files such as screenshots, served with their mime type).
"""

from __future__ import annotations

import json
import mimetypes
import re
from pathlib import Path
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from multi_task_orchestrator.engine import (
    UnknownOrchestration,
    aggregated_results,
    build_report,
    render_log,
    render_summary,
    run_files,
)
from multi_task_orchestrator.tools.context import tool_context
from multi_task_orchestrator.tools.views import orchestration_status

_ARTIFACT_URI = re.compile(r"^orchestration://[^/]+/artifacts/(?P<name>[^/]+)$")


def register(mcp: MCPServer) -> None:
    """Add the resources; the most specific templates first."""
    mcp.resource(
        "orchestration://{id}/artifacts/{name}",
        name="artifact",
        description="A file a task produced (e.g. a screenshot); get_results lists them.",
        mime_type="application/octet-stream",
    )(read_artifact)
    mcp.resource(
        "orchestration://{id}/report",
        name="report",
        description="The HTML report: summary, timeline picture, every task, failures, files.",
        mime_type="text/html",
    )(read_report)
    mcp.resource(
        "orchestration://{id}/results",
        name="results",
        description="Every task's state, timings and full output (JSON, not size-bounded).",
        mime_type="application/json",
    )(read_results)
    mcp.resource(
        "orchestration://{id}/log",
        name="log",
        description="The execution log: one line per event.",
        mime_type="text/plain",
    )(read_log)
    mcp.resource(
        "orchestration://{id}/summary",
        name="summary",
        description="The summary report: totals, success and failure counts, failures, files.",
        mime_type="text/plain",
    )(read_summary)
    mcp.resource(
        "orchestration://{id}",
        name="status",
        description="The orchestration's status with every task (JSON).",
        mime_type="application/json",
    )(read_status)


async def read_status(id: str, ctx: Context) -> str:
    snapshot = await _snapshot(ctx, id)
    status = orchestration_status(snapshot, max_rows=max(1, len(snapshot.tasks)))
    return status.model_dump_json(indent=2)


async def read_results(id: str, ctx: Context) -> str:
    snapshot = await _snapshot(ctx, id, include_outputs=True)
    return json.dumps(aggregated_results(snapshot), indent=2, default=str, ensure_ascii=False)


async def read_log(id: str, ctx: Context) -> str:
    engine = tool_context(ctx).engine
    snapshot = await _snapshot(ctx, id)
    return render_log(await engine.events(snapshot.id)) + "\n"


async def read_summary(id: str, ctx: Context) -> str:
    snapshot = await _snapshot(ctx, id)
    return render_summary(snapshot, run_files(snapshot.run_dir)) + "\n"


async def read_report(id: str, ctx: Context) -> str:
    snapshot = await _snapshot(ctx, id)
    return (await build_report(tool_context(ctx).engine.store, snapshot)).html


async def read_artifact(id: str, name: str, ctx: Context) -> bytes:
    snapshot = await _snapshot(ctx, id)
    folder = (Path(snapshot.run_dir or "") / "artifacts").resolve()
    path = (folder / name).resolve()
    if path.parent != folder or not path.is_file():
        available = (
            sorted(p.name for p in folder.iterdir() if p.is_file() and not p.is_symlink())
            if folder.is_dir()
            else []
        )
        listing = ", ".join(available) or "none"
        raise ResourceError(
            f"orchestration {snapshot.id} has no artifact '{name}'; it has: {listing}"
        )
    return path.read_bytes()


async def _snapshot(ctx: Context, orchestration_id: str, *, include_outputs: bool = False) -> Any:
    try:
        return await tool_context(ctx).engine.snapshot(
            orchestration_id, include_outputs=include_outputs
        )
    except UnknownOrchestration as exc:
        raise ResourceError(str(exc)) from None


class ArtifactMimeTypes:
    """Server middleware: an artifact is served with its own mime type (PNG, PDF, ...).

    A resource template has one mime type; artifacts differ, so the type is set per file here.
    """

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method != "resources/read" or result is None:
            return result
        uri = str((ctx.params or {}).get("uri", ""))
        match = _ARTIFACT_URI.match(uri)
        if match is None:
            return result
        mime_type = mimetypes.guess_type(match["name"])[0] or "application/octet-stream"
        # Middleware sees the result already serialized (a dict with camelCase keys); a model
        # is handled as well in case a later SDK hands one over.
        if isinstance(result, dict):
            for content in result.get("contents") or []:
                content["mimeType"] = mime_type
        else:
            for content in getattr(result, "contents", None) or []:
                content.mime_type = mime_type
        return result
