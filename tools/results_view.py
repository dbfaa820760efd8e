"""``get_results``' answer: a bounded page of outputs, or of what a query picks of them, that
says what it leaves out and the exact call that gets the rest."""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ResourceLink

from multi_task_orchestrator.engine import RunSnapshot, render_summary, run_files, run_query
from multi_task_orchestrator.tools.models import DEFAULT_RESULT_CHARS, OutputPart, Results
from multi_task_orchestrator.tools.pages import Page, Part, page_outputs
from multi_task_orchestrator.tools.views import artifacts, failures, usage_info

QUERY = "query"  # the one "output" a page holds when a query was asked
FAILURES_SHOWN = 20  # failures listed in an answer (and in its summary); failed tasks first
ARTIFACT_LINKS = 20  # artifacts linked as content blocks; `artifacts` lists every one


def results(
    snapshot: RunSnapshot,
    *,
    task_ids: list[str] | None,
    query: str | None = None,
    offset: int = 0,
    item_offset: int = 0,
    max_chars: int,
) -> Results:
    """Outputs of finished tasks (or what ``query`` picks of them) from ``offset`` on, within
    ``max_chars`` of JSON; an output too large alone is shown in part (``tools.pages``)."""
    finished = [t for t in snapshot.tasks if t.has_output]
    if task_ids is not None:
        wanted = set(task_ids)
        finished = [t for t in finished if t.task_id in wanted]
    else:  # a fan-out's output already lists its children's: do not send them twice
        with_output = {t.task_id for t in finished}
        finished = [t for t in finished if t.parent_id not in with_output]
    pairs: list[tuple[str, Any]] = [(t.task_id, t.output) for t in finished]
    if query is not None:
        try:
            pairs = [(QUERY, run_query(query, dict(pairs)))]
        except ValueError as exc:
            raise ToolError(
                f"the query could not be run: {exc}. It is a JMESPath expression searched "
                'over {task_id: output}, e.g. query="fetch.items[0:10].name" (quote ids with '
                "dashes: '\"fetch-1\".items')"
            ) from None
    page = page_outputs(pairs, offset=offset, item_offset=item_offset, max_chars=max_chars)
    failed = failures(snapshot)
    if len(failed) > FAILURES_SHOWN:  # the root causes first
        failed = sorted(failed, key=lambda failure: failure.state != "failed")
    asked = {"id": snapshot.id, "task_ids": task_ids, "query": query, "max_chars": max_chars}
    next_call = None
    if page.next_offset is not None:
        next_call = _call(asked, offset=page.next_offset, item_offset=page.next_item_offset)
    usage, budget = usage_info(snapshot)
    return Results(
        id=snapshot.id,
        name=snapshot.name,
        status=snapshot.status.value,
        summary=render_summary(snapshot, run_files(snapshot.run_dir), max_failures=FAILURES_SHOWN),
        outputs={} if query is not None else page.outputs,
        query_result=page.outputs.get(QUERY) if query is not None else None,
        part=_output_part(page.part) if page.part else None,
        failures=failed[:FAILURES_SHOWN],
        failures_omitted=max(0, len(failed) - FAILURES_SHOWN),
        artifacts=artifacts(snapshot),
        usage=usage,
        budget=budget,
        truncated=next_call is not None or page.part is not None or len(failed) > FAILURES_SHOWN,
        next_offset=page.next_offset,
        next_item_offset=page.next_item_offset if page.next_offset is not None else None,
        next_call=next_call,
        note=_left_out(page, len(pairs) - offset, query, next_call, asked, len(failed)),
        results_uri=f"orchestration://{snapshot.id}/results",
    )


def _output_part(part: Part) -> OutputPart:
    return OutputPart(
        task=part.task,
        kind=part.kind,
        start=part.start,
        end=part.end,
        total=part.total,
        too_large=part.too_large,
    )


def _call(asked: dict[str, Any], **position: int) -> str:
    """The exact get_results call for a page, e.g. ``get_results(id="orch-1", offset=2)``."""
    arguments = {
        **{name: value for name, value in asked.items() if value is not None},
        **{name: value for name, value in position.items() if value},
    }
    if arguments.get("max_chars") == DEFAULT_RESULT_CHARS:
        del arguments["max_chars"]
    shown = ", ".join(f"{name}={json.dumps(value)}" for name, value in arguments.items())
    return f"get_results({shown})"


def _left_out(
    page: Page,
    wanted: int,
    query: str | None,
    next_call: str | None,
    asked: dict[str, Any],
    failure_count: int,
) -> str | None:
    """What the page leaves out, and the exact call that gets it."""
    notes = []
    if failure_count > FAILURES_SHOWN:
        notes.append(
            f"{FAILURES_SHOWN} of {failure_count:,} failures shown (failed tasks first); "
            f"every task's state is in orchestration://{asked['id']}/results"
        )
    part = page.part
    if part is not None:
        what = "the query's result" if query is not None else f"the output of {part.task}"
        notes.append(
            f"{what} is too large for one answer ({part.total:,} {part.kind}); this answer "
            f"shows {part.kind} {part.start:,}–{part.end:,} of it"
        )
        if part.too_large:
            shown = ", ".join(str(position) for position in part.too_large[:10])
            example = _call({**asked, "query": f"{_path(part.task, query)}{part.reach}"})
            notes.append(
                f"{part.kind} at {shown} are each larger than max_chars alone and left out: "
                f"reach into one with a query, e.g. {example}"
            )
    elif next_call is not None:
        notes.append(
            f"{len(page.outputs)} of {wanted} outputs shown to stay under "
            f"{asked['max_chars']:,} characters"
        )
    if next_call is not None:
        notes.append(f"the rest: {next_call}")
    return "; ".join(notes) or None


def _path(task: str, query: str | None) -> str:
    if query is not None:
        return f"({query})"
    return task if task.isidentifier() else json.dumps(task)


def result_links(answer: Results) -> list[ResourceLink]:
    """The bulk data behind an answer as resource links: the full results, then artifacts."""
    links = [
        ResourceLink(
            type="resource_link",
            name="results",
            uri=answer.results_uri,
            description="every task's state, timings and output (paged past a size bound)",
            mime_type="application/json",
        )
    ]
    links += [
        ResourceLink(
            type="resource_link",
            name=artifact.name,
            uri=artifact.uri,
            mime_type=artifact.mime_type,
            size=artifact.size,
        )
        for artifact in answer.artifacts[:ARTIFACT_LINKS]
    ]
    return links
