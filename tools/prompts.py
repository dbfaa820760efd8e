"""The ``plan_orchestration`` prompt: turn a request into a good orchestration document."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field

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
