"""The orchestration tools: submit, validate, status, wait, results, list, cancel, retry."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BeforeValidator, Field

from multi_task_orchestrator.engine import (
    Engine,
    RunSnapshot,
    cpu_bound,
    iso,
)
from multi_task_orchestrator.tools.context import ToolContext, tool_context
from multi_task_orchestrator.tools.errors import friendly_errors
from multi_task_orchestrator.tools.models import (
    DEFAULT_RESULT_CHARS,
    OrchestrationList,
    OrchestrationStatus,
    OrchestrationSummary,
    Results,
    Submission,
    ValidationReport,
)
from multi_task_orchestrator.tools.results_view import result_links, results
from multi_task_orchestrator.tools.strict import read_only, runs_tasks, strict_tool
from multi_task_orchestrator.tools.views import (
    orchestration_status,
    plan_info,
    problem,
    snapshot_for_status,
    validation_report,
)


def _as_document_text(value: Any) -> Any:
    """A spec that is neither text nor an object (the SDK reads the text 'null' or '[]' as JSON
    before validation) goes to the document loader as JSON text, which says what a document
    must be, as it does for any other text that is no mapping."""
    return value if isinstance(value, str | dict) else json.dumps(value)


SpecInput = Annotated[
    str | dict[str, Any],
    BeforeValidator(_as_document_text),
    Field(
        description=(
            "The orchestration document: YAML or JSON text, or an object. Minimal form: "
            "{tasks: [{id, type, config, dependencies}]}; list_task_types shows every type."
        )
    ),
]
VarsInput = Annotated[
    dict[str, Any] | None,
    Field(description="values for ${vars.NAME} references; they override the document's vars"),
]
IdInput = Annotated[str, Field(description="the orchestration id (or a unique prefix of it)")]


def tools(max_wait_seconds: float) -> list[Tool]:
    """The orchestration tools; their descriptions state this server's wait cap."""
    cap = (
        f"\n\nThis server waits at most {max_wait_seconds:g} s per call "
        "(ORCHESTRATOR_MAX_WAIT_SECONDS); a longer wait is cut to that and the answer's "
        "wait_note says so. Call wait_for_orchestration again to keep waiting."
    )
    return [
        strict_tool(
            submit_orchestration,
            annotations=runs_tasks("Submit an orchestration"),
            description=inspect.cleandoc(submit_orchestration.__doc__ or "") + cap,
        ),
        strict_tool(validate_orchestration, annotations=read_only("Check a document")),
        strict_tool(get_status, annotations=read_only("Status")),
        strict_tool(
            wait_for_orchestration,
            annotations=read_only("Wait for an orchestration"),
            description=inspect.cleandoc(wait_for_orchestration.__doc__ or "") + cap,
        ),
        strict_tool(get_results, annotations=read_only("Results")),
        strict_tool(list_orchestrations, annotations=read_only("List orchestrations")),
        strict_tool(
            cancel_orchestration,
            annotations=ToolAnnotations(
                title="Cancel an orchestration",
                read_only_hint=False,
                destructive_hint=True,
                idempotent_hint=False,
                # cancelling a task lets the run's run_if all_done tasks act; the end notifies
                open_world_hint=True,
            ),
        ),
        strict_tool(
            retry_orchestration,
            annotations=runs_tasks("Retry what failed"),
        ),
    ]


@friendly_errors
async def submit_orchestration(
    spec: SpecInput,
    ctx: Context,
    vars: VarsInput = None,
    wait_seconds: Annotated[
        float,
        Field(ge=0, description="wait up to this long and return the status reached"),
    ] = 0,
    idempotency_key: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=200,
            description="submitting the same document again with this key returns the first "
            "run, not a new one; a different document with the key is refused",
        ),
    ] = None,
) -> Submission:
    """Start a batch of tasks (a DAG) running in the background; returns its id at once.

    Use it when a request means many pieces of work: calls to make, data to merge, items to
    process in parallel. Tasks run concurrently as far as their dependencies and limits allow;
    each finished task's output can feed later tasks through ${task_id.output...}. Follow with
    wait_for_orchestration or get_status, then get_results.

    Example spec (YAML):
      name: Demo
      max_concurrent: 5
      tasks:
        - {id: a, type: delay, config: {seconds: 1, value: [1, 2, 3]}}
        - {id: each, type: delay, dependencies: [a], for_each: "${a.output}",
           config: {value: "item ${item}"}}
        - {id: merged, type: data_processing, dependencies: [each],
           config: {action: merge, inputs: ["each.output"]}}
    Result: {"id": "orch-…", "status": "running", "task_count": 3, "plan": {...}}

    An invalid document is refused with every problem listed (line, column, fix).
    """
    tools = tool_context(ctx)
    engine = tools.engine
    validation = await engine.validate_in_thread(spec, extra_vars=vars, require_runners=True)
    orchestration = validation.raise_for_errors()
    run_id, existing = await engine.start(
        orchestration, idempotency_key=idempotency_key, source_name="mcp"
    )
    assert validation.plan is not None
    progress = None
    if wait_seconds > 0:
        progress = await _waited(ctx, tools, run_id, wait_seconds)
    status = progress.status if progress else (await engine.run_status(run_id)).value
    return Submission(
        id=run_id,
        status=status,
        task_count=validation.plan.task_count,
        existing=existing,
        plan=plan_info(validation.plan),
        warnings=[problem(issue) for issue in validation.warnings],
        progress=progress,
        next_step=(
            f"call wait_for_orchestration(id='{run_id}') or get_status(id='{run_id}'); "
            f"then get_results(id='{run_id}')"
        ),
    )


@friendly_errors
async def validate_orchestration(
    spec: SpecInput, ctx: Context, vars: VarsInput = None
) -> ValidationReport:
    """Check an orchestration document without running it.

    Returns every problem at once (each with its line, column and how to fix it), or, when the
    document is valid, the plan: its stages, the critical path and the limits that apply.
    Example: validate_orchestration(spec="tasks: [{id: a, type: delay}]") ->
    {"ok": true, "plan": {"stages": [["a"]], ...}}
    """
    engine = tool_context(ctx).engine
    validation = await engine.validate_in_thread(spec, extra_vars=vars, require_runners=True)
    await engine.machine_warnings(validation)
    return await cpu_bound(functools.partial(validation_report, validation))


@friendly_errors
async def get_status(id: IdInput, ctx: Context) -> OrchestrationStatus:
    """Where an orchestration stands: state, counts per state, percent done, elapsed time, and
    up to 30 per-task rows (state, attempts, duration, last error; running, retrying and failed
    first, `tasks_omitted` counts the rest), plus `display` — a progress bar and task tree
    ready to show the user. Returns at once; use wait_for_orchestration to wait.
    """
    tools = tool_context(ctx)
    snapshot = await snapshot_for_status(tools.engine, id, max_rows=tools.max_status_rows)
    return orchestration_status(snapshot, max_rows=tools.max_status_rows)


@friendly_errors
async def wait_for_orchestration(
    id: IdInput,
    ctx: Context,
    timeout_seconds: Annotated[
        float,
        Field(
            ge=0,
            description="how long to wait at most (the server's cap, below, applies)",
        ),
    ] = 30,
) -> OrchestrationStatus:
    """Wait until an orchestration finishes or the timeout passes, sending progress
    notifications meanwhile; returns the status reached (check `finished`).
    """
    return await _waited(ctx, tool_context(ctx), id, timeout_seconds)


@friendly_errors
async def get_results(
    id: IdInput,
    ctx: Context,
    task_ids: Annotated[
        list[str] | None, Field(description="only these tasks' outputs (default: all)")
    ] = None,
    query: Annotated[
        str | None,
        Field(
            description="a JMESPath expression over {task_id: output}; the answer's "
            'query_result is what it picks, e.g. "fetch.items[?price > `10`].name"'
        ),
    ] = None,
    max_chars: Annotated[
        int, Field(ge=200, le=200_000, description="size bound for the outputs, in characters")
    ] = DEFAULT_RESULT_CHARS,
    offset: Annotated[
        int, Field(ge=0, description="skip this many outputs (next_offset of a previous answer)")
    ] = 0,
    item_offset: Annotated[
        int,
        Field(
            ge=0,
            description="inside the first output of the page, start at this item, key or "
            "character (next_item_offset of a previous answer)",
        ),
    ] = 0,
) -> Annotated[CallToolResult, Results]:
    """Outputs of finished tasks, the summary report, failures with their cause chains, and
    artifact links. Works while the run is still going (outputs so far). A fan-out's output is
    the list of its items' outputs; ask for items such as "publish[2]" by task_ids.

    Bounded in size: outputs come whole while they fit in max_chars; one output too large on
    its own comes in parts that are still valid JSON (a list's items, an object's keys, a
    text's characters; `part` says which). `note` says what was left out and `next_call` is the
    exact call for the rest. `query` picks what you need instead (JMESPath over
    {task_id: output}; quote ids with dashes: '"fetch-1".items[0]').
    """
    tools = tool_context(ctx)
    snapshot = await tools.engine.snapshot(id, include_outputs=True)
    await tools.engine.settled(snapshot.id)  # the files it lists are all written
    if task_ids:
        known = {task.task_id for task in snapshot.tasks}
        unknown = [task_id for task_id in task_ids if task_id not in known]
        if unknown:
            listing = ", ".join(sorted(known)[:30])
            missing = ", ".join(unknown)
            raise ToolError(f"orchestration {snapshot.id} has no task {missing}; tasks: {listing}")
    answer = await cpu_bound(
        functools.partial(
            results,
            snapshot,
            task_ids=task_ids or None,
            query=query,
            offset=offset,
            item_offset=item_offset,
            max_chars=max_chars,
        )
    )
    return CallToolResult(
        content=[
            TextContent(type="text", text=answer.model_dump_json(exclude_none=True)),
            *result_links(answer),
        ],
        structured_content=answer.model_dump(mode="json"),
    )


@friendly_errors
async def list_orchestrations(
    ctx: Context,
    status: Annotated[
        Literal["pending", "running", "succeeded", "failed", "cancelled"] | None,
        Field(description="only orchestrations in this state"),
    ] = None,
    limit: Annotated[int, Field(ge=1, le=200)] = 20,
) -> OrchestrationList:
    """Recent orchestrations, newest first, with their state."""
    rows = await tool_context(ctx).engine.list(status, limit)
    return OrchestrationList(
        orchestrations=[
            OrchestrationSummary(
                id=row.id,
                name=row.name,
                status=row.status,
                created_at=iso(row.created_at) or "",
                finished_at=iso(row.finished_at),
                source=row.source,
            )
            for row in rows
        ]
    )


@friendly_errors
async def cancel_orchestration(
    id: IdInput,
    ctx: Context,
    task_id: Annotated[
        str | None, Field(description="cancel only this task (its dependents are skipped)")
    ] = None,
) -> OrchestrationStatus:
    """Cancel an orchestration that is running: running tasks are stopped, the rest marked
    cancelled. With task_id, cancel one task only. A finished run cannot be cancelled.
    """
    tools = tool_context(ctx)
    engine = tools.engine
    before = await snapshot_for_status(engine, id, max_rows=tools.max_status_rows)
    if before.status.terminal:
        raise ToolError(
            f"orchestration {before.id} already finished ({before.status.value}); nothing to "
            "cancel. Use retry_orchestration to run its failed tasks again."
        )
    if before.id not in engine.runs:
        raise ToolError(
            f"orchestration {before.id} is run by another server process; cancel it there"
        )
    await engine.cancel(before.id, task_id)
    if task_id is None:
        await engine.wait_until_finished(before.id, 10)
    snapshot = await snapshot_for_status(engine, before.id, max_rows=tools.max_status_rows)
    return orchestration_status(snapshot, max_rows=tools.max_status_rows)


@friendly_errors
async def retry_orchestration(id: IdInput, ctx: Context) -> OrchestrationStatus:
    """Run a finished orchestration's failed, skipped and cancelled tasks again, keeping the
    outputs of the tasks that succeeded (fan-outs re-run only their failed items). Returns at
    once; follow with wait_for_orchestration.
    """
    tools = tool_context(ctx)
    run_id = await tools.engine.retry(id)
    snapshot = await snapshot_for_status(tools.engine, run_id, max_rows=tools.max_status_rows)
    return orchestration_status(snapshot, max_rows=tools.max_status_rows)


async def _waited(
    ctx: Context, tools: ToolContext, run_id: str, seconds: float
) -> OrchestrationStatus:
    """The status after waiting up to ``seconds``, saying so when the server's cap cut it."""
    snapshot = await _wait(ctx, tools, run_id, seconds)
    status = orchestration_status(snapshot, max_rows=tools.max_status_rows)
    cap = tools.max_wait_seconds
    if seconds > cap and not status.finished:
        status.wait_note = (
            f"waited {cap:g} s, not the {seconds:g} s asked for: this server caps a wait at "
            f"{cap:g} s (ORCHESTRATOR_MAX_WAIT_SECONDS). Call wait_for_orchestration(id="
            f"'{snapshot.id}') again to keep waiting."
        )
    return status


async def _wait(ctx: Context, tools: ToolContext, run_id: str, seconds: float) -> RunSnapshot:
    """Wait up to ``seconds`` (capped), reporting progress about once a second; the status
    reached, as ``snapshot_for_status`` reads it."""
    engine: Engine = tools.engine
    run_id = await engine.resolve_id(run_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(seconds, tools.max_wait_seconds)
    while True:
        snapshot = await snapshot_for_status(engine, run_id, max_rows=tools.max_status_rows)
        await ctx.report_progress(snapshot.done, snapshot.total, _progress_message(snapshot))
        remaining = deadline - loop.time()
        if snapshot.status.terminal or remaining <= 0:
            return snapshot
        await engine.wait_until_finished(run_id, min(1.0, remaining))


def _progress_message(snapshot: RunSnapshot) -> str:
    counts = snapshot.counts()
    running = snapshot.running_tasks() + counts["retrying"]
    failed = counts["failed"]
    text = f"{snapshot.done}/{snapshot.total} done, {running} running"
    return text + (f", {failed} failed" if failed else "")
