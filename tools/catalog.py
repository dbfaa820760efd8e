"""``list_task_types``: every task type with its config schema and an example."""

from __future__ import annotations

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from mcp.types import ToolAnnotations

from multi_task_orchestrator.engine import registry
from multi_task_orchestrator.tools.context import tool_context
from multi_task_orchestrator.tools.errors import friendly_errors
from multi_task_orchestrator.tools.models import TaskTypeInfo, TaskTypeList
from multi_task_orchestrator.tools.strict import strict_tool

NOT_YET = "part of the document format; its runner arrives in a later release of this server"


def tools() -> list[Tool]:
    return [
        strict_tool(
            list_task_types,
            annotations=ToolAnnotations(title="Task types", readOnlyHint=True, openWorldHint=False),
        )
    ]


@friendly_errors
async def list_task_types(ctx: Context) -> TaskTypeList:
    """Every task type an orchestration can use, with its config JSON Schema and an example
    task. Call this before writing a document for submit_orchestration.
    """
    engine = tool_context(ctx).engine
    runners = engine.runners()
    types = []
    for name in registry.type_names():
        aliases = sorted(registry.aliases_of(name))
        runner = runners.get(name)
        if runner is None:
            reason = engine.disabled_types.get(name)
            summary = f"disabled on this server: {reason}" if reason else NOT_YET
            types.append(TaskTypeInfo(type=name, aliases=aliases, available=False, summary=summary))
            continue
        types.append(
            TaskTypeInfo(
                type=name,
                aliases=aliases,
                available=True,
                summary=runner.summary,
                config_schema=runner.config_model.model_json_schema(),
                example=runner.example,
            )
        )
    return TaskTypeList(
        task_types=types,
        document_schema_hint=(
            "A document: {name, mode: parallel|sequential|mixed, max_concurrent, vars, limits, "
            "tasks: [{id, type, config, dependencies, priority, timeout, retry, run_if, "
            "for_each, limit, stage}], on_failure: {strategy: continue|abort|retry}}. "
            "The prompt plan_orchestration explains it with a worked example."
        ),
    )
