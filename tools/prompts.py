"""The ``plan_orchestration`` prompt: turn a request into a good orchestration document.

``PromptArguments`` answers a ``prompts/get`` for no known prompt, or with an argument missing
or unknown, as Invalid params (-32602) naming it, as the MCP spec asks; the SDK would answer an
internal error (-32603) that says nothing.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

from mcp import MCPError
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.types import INVALID_PARAMS
from pydantic import Field

from multi_task_orchestrator.engine import did_you_mean

GUIDE = """\
You are writing an orchestration document for the Multi-Task Orchestrator MCP server. It runs
a DAG of tasks in parallel, durably, and reports progress and results.

Goal: {goal}

How to write the document (YAML or JSON):
- tasks: a list of {{id, type, config, dependencies}}. Ids are short snake_case names.
- Make independent work independent: only list a dependency when a task needs another's
  output. Everything without a path between it runs in parallel.
- Pass data with references: "${{task_id.output}}" (a whole value keeps its type),
  "${{task_id.output.items[0].title}}" (any JMESPath), "${{vars.name}}". In a data_processing
  task, inputs: ["a.output", "b.output"] lists several.
- Fan out over a list with for_each: "${{task.output}}": one tracked child per item, with
  "${{item}}" and "${{index}}" in its config; max_concurrent caps the children.
- Pace the work: max_concurrent (orchestration-wide), limits: {{api: {{concurrency: 2,
  rate: "10/s"}}}} with limit: api on tasks, priority: higher first.
- Cap what model steps (llm) may use: budget: {{tokens: 200000, cost_usd: 2.00}} on the
  document, or on one task; once spent, no more model steps start (class budget).
- Be robust: retry: {{max_attempts: 3, on: [timeout, network, http_429, http_5xx]}},
  timeout: 30s per task, on_failure: {{strategy: continue | abort | retry}},
  run_if: all_done or any_failed for clean-up and fallback tasks.
- Secrets are never written in a document: use "${{vault.NAME}}".
- Call list_task_types for the types' fields and examples, list_task_types(type=...) for
  one type's full config schema; call validate_orchestration before submitting; then
  submit_orchestration, wait_for_orchestration and get_results.

Modes: parallel (default; dependencies are the only ordering), sequential (one at a time,
in order), mixed (stages are barriers: stage: 1, 2, ... or the DAG's levels).

Worked example — "collect three sources, merge them, check each item, report":

name: Collect and check
max_concurrent: 5
tasks:
  - {{id: source_a, type: delay, config: {{seconds: 1, value: [{{title: A1}}, {{title: A2}}]}}}}
  - {{id: source_b, type: delay, config: {{seconds: 1, value: [{{title: B1}}]}},
     retry: {{max_attempts: 3, on: [network]}}}}
  - id: merged
    type: data_processing
    dependencies: [source_a, source_b]
    config: {{action: merge, inputs: ["source_a.output", "source_b.output"]}}
  - id: check_each
    type: delay
    dependencies: [merged]
    for_each: "${{merged.output}}"
    max_concurrent: 3
    config: {{value: {{title: "${{item.title}}", position: "${{index}}"}}}}
  - id: report
    type: data_processing
    dependencies: [check_each]
    run_if: all_done
    config: {{action: aggregate, input: "${{merged.output}}", ops: {{items: count}}}}
on_failure: {{strategy: continue}}

Write the document for the goal above, then validate and submit it.
"""


def register(mcp: MCPServer) -> None:
    mcp.prompt(
        name="plan_orchestration",
        title="Plan an orchestration",
        description="Turn a request into an orchestration document: format, task types, example.",
    )(plan_orchestration)


def plan_orchestration(
    goal: Annotated[str, Field(description="what the user wants done, in their words")],
) -> str:
    return GUIDE.format(goal=goal)


PROMPTS = {"plan_orchestration": plan_orchestration}


class PromptArguments:
    """Server middleware: a ``prompts/get`` the prompt cannot answer is refused, saying why."""

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method == "prompts/get":
            _check(ctx.params or {})
        return await call_next(ctx)


def _check(params: Any) -> None:
    name = str(params.get("name", ""))
    prompt = PROMPTS.get(name)
    if prompt is None:
        hint = did_you_mean(name[:100], PROMPTS)
        raise MCPError(
            INVALID_PARAMS,
            f"no prompt {name[:60]!r}; prompts: {', '.join(PROMPTS)}"
            + (f" ({hint})" if hint else ""),
        )
    takes = list(inspect.signature(prompt).parameters)
    given = params.get("arguments") or {}
    problems = [f"missing argument {arg!r}" for arg in takes if arg not in given]
    for arg in given:
        if arg not in takes:
            hint = did_you_mean(str(arg)[:100], takes)
            problems.append(f"unknown argument {str(arg)[:60]!r}" + (f" ({hint})" if hint else ""))
    if problems:
        raise MCPError(
            INVALID_PARAMS,
            f"prompt {name}: {'; '.join(problems)}; it takes: {', '.join(takes)} "
            "(prompts/list describes them)",
        )
