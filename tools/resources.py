"""Resources: an orchestration's status, full results, log, summary and artifacts.

``orchestration://{id}`` (status JSON), ``.../results{?offset}`` (every task with its output,
paged past ``RESOURCE_MAX_CHARS``), ``.../log`` (the execution log, its last part when long),
``.../summary`` (the summary report), ``.../report`` (the HTML report with the timeline, or
where to get it when it is too large) and
``.../artifacts/{name}`` (files such as screenshots, served with their mime type).
``resources/list`` lists the recent orchestrations (``RecentRuns``). A read of a run or file
that does not exist is refused as "resource not found" (JSON-RPC -32602, SEP-2164).
"""

from __future__ import annotations

import functools
import html
import json
import mimetypes
import re
from pathlib import Path
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.types import ListResourcesResult, Resource

from multi_task_orchestrator.engine import (
    RunSnapshot,
    UnknownOrchestration,
    aggregated_results,
    build_report,
    cpu_bound,
    iso,
    render_log,
    render_summary,
    run_files,
)
from multi_task_orchestrator.tools.context import ToolContext, tool_context
from multi_task_orchestrator.tools.pages import size
from multi_task_orchestrator.tools.views import orchestration_status

RESOURCE_MAX_CHARS = 200_000  # the most a resource read answers with (artifacts aside)
STATUS_ROWS = 500  # task rows of the status resource (~250 characters each)
RECENT_RUNS = 20  # orchestrations resources/list shows
RUN_PARTS = "more at orchestration://{id}/results, /log, /summary and /report"
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
        "orchestration://{id}/results{?offset}",
        name="results",
        description="Every task's state, timings and output (JSON), paged: `page.next` is "
        "the URI of the next part when there is one.",
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
    status = orchestration_status(snapshot, max_rows=max(1, min(len(snapshot.tasks), STATUS_ROWS)))
    return status.model_dump_json(indent=2, exclude_none=True)


async def read_results(id: str, ctx: Context, offset: str = "0") -> str:
    if not offset.isdigit():
        raise ResourceNotFoundError(
            f"offset must be a whole number (a task's position), as page.next gives it; "
            f"e.g. orchestration://{id}/results?offset=100"
        )
    snapshot = await _snapshot(ctx, id, include_outputs=True)
    page = await cpu_bound(functools.partial(results_page, snapshot, int(offset)))
    return json.dumps(page, separators=(",", ":"), default=str, ensure_ascii=False)


async def read_log(id: str, ctx: Context) -> str:
    engine = tool_context(ctx).engine
    snapshot = await _snapshot(ctx, id)
    log = render_log(await engine.events(snapshot.id)) + "\n"
    if len(log) <= RESOURCE_MAX_CHARS:
        return log
    tail = log[-RESOURCE_MAX_CHARS:]
    tail = tail[tail.find("\n") + 1 :]
    left_out = len(log) - len(tail)
    whole = "the whole log is"
    if not snapshot.status.terminal:
        whole = f"once the run ends, {whole}"
    return (
        f"[the first {left_out:,} characters of this log are left out; {whole} the file "
        f"execution_log.txt in the run's folder, {snapshot.run_dir}]\n{tail}"
    )


async def read_summary(id: str, ctx: Context) -> str:
    snapshot = await _snapshot(ctx, id)
    await tool_context(ctx).engine.settled(snapshot.id)  # its files are all written
    return render_summary(snapshot, run_files(snapshot.run_dir)) + "\n"


async def read_report(id: str, ctx: Context) -> str:
    snapshot = await _snapshot(ctx, id)
    report = await build_report(tool_context(ctx).engine.store, snapshot)
    page = await cpu_bound(lambda: report.html)  # a large run's page takes a while to make
    if len(page) <= RESOURCE_MAX_CHARS:
        return page
    return (
        f"<!doctype html><meta charset=utf-8><title>Report of {snapshot.id}</title><p>The "
        f"report of orchestration {snapshot.id} has {len(page):,} characters, more than a "
        f"resource read answers with ({RESOURCE_MAX_CHARS:,}). Run <code>orchestrator report "
        f"{snapshot.id}</code> to write it as report.html in the run's folder "
        f"({html.escape(snapshot.run_dir or '')}); orchestration://{snapshot.id}/summary and "
        "the get_report tool give its summary.</p>"
    )


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
        raise ResourceNotFoundError(
            f"orchestration {snapshot.id} has no artifact '{name}'; it has: {listing}"
        )
    return path.read_bytes()


async def _snapshot(ctx: Context, orchestration_id: str, *, include_outputs: bool = False) -> Any:
    try:
        return await tool_context(ctx).engine.snapshot(
            orchestration_id, include_outputs=include_outputs
        )
    except UnknownOrchestration as exc:
        raise ResourceNotFoundError(str(exc)) from None


def results_page(snapshot: RunSnapshot, offset: int) -> dict[str, Any]:
    """``aggregated_results`` from the task at ``offset`` on, within ``RESOURCE_MAX_CHARS``; an
    output too large alone is replaced by where to page through it (get_results)."""
    everything = aggregated_results(snapshot)
    tasks: dict[str, dict[str, Any]] = everything["tasks"]
    ids = list(tasks)
    shown: dict[str, dict[str, Any]] = {}
    used = 0
    position = offset
    while position < len(ids):
        task_id = ids[position]
        entry = tasks[task_id]
        cost = size(entry)
        if cost > RESOURCE_MAX_CHARS:
            output = size(entry["output"])
            entry = {
                **entry,
                "output": None,
                "output_left_out": f'{output:,} characters; get_results(id="{snapshot.id}", '
                f"task_ids=[{json.dumps(task_id)}]) pages through it, or pick part of it "
                "with its query argument",
            }
            cost = size(entry)
        if shown and used + cost > RESOURCE_MAX_CHARS:
            break
        shown[task_id] = entry
        used += cost
        position += 1
    more = position < len(ids)
    return {
        **everything,
        "tasks": shown,
        "page": {
            "offset": offset,
            "tasks_shown": len(shown),
            "tasks_total": len(ids),
            "next": f"orchestration://{snapshot.id}/results?offset={position}" if more else None,
        },
    }


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


class RecentRuns:
    """Server middleware: ``resources/list`` lists the recent orchestrations' status resources.

    The SDK lists only fixed resources, and its list handler has no access to the engine; the
    runs are added to its answer here.
    """

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        result = await call_next(ctx)
        state = ctx.lifespan_context
        if ctx.method != "resources/list" or not isinstance(state, ToolContext):
            return result
        runs = [
            Resource(
                uri=f"orchestration://{row.id}",
                name=row.id,
                title=f"{row.name} ({row.status})",
                description=f"{row.status}, created {iso(row.created_at)}; "
                f"{RUN_PARTS.format(id=row.id)}",
                mime_type="application/json",
            ).model_dump(mode="json", by_alias=True, exclude_none=True)
            for row in await state.engine.list(None, RECENT_RUNS)
        ]
        if isinstance(result, dict):
            result["resources"] = [*(result.get("resources") or []), *runs]
            return result
        if isinstance(result, ListResourcesResult):
            result.resources = [*result.resources, *(Resource(**run) for run in runs)]
        return result
