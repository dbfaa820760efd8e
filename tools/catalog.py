"""``list_task_types``: a short guide to every task type, or one type's full config schema.

The default answer is a summary an agent reads before writing a document (about 2k tokens):
each type's one-line summary, its config fields (required and optional) and an example task
(its id, type, config and dependencies). ``list_task_types(type=...)`` adds that type's
config JSON Schema and its full example; the schema alone is larger than the whole summary for
some types.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from pydantic import Field

from multi_task_orchestrator.engine import Engine, did_you_mean, registry
from multi_task_orchestrator.tools.context import tool_context
from multi_task_orchestrator.tools.errors import friendly_errors
from multi_task_orchestrator.tools.models import TaskTypeInfo, TaskTypeList
from multi_task_orchestrator.tools.strict import read_only, strict_tool

NOT_YET = "part of the document format; its runner arrives in a later release of this server"
DOCUMENT_HINT = (
    "A document: {name, mode: parallel|sequential|mixed, max_concurrent, vars, limits, "
    "tasks: [{id, type, config, dependencies, priority, timeout, retry, run_if, "
    "for_each, limit, stage}], on_failure: {strategy: continue|abort|retry}}. "
    "The prompt plan_orchestration explains it with a worked example."
)


def tools() -> list[Tool]:
    return [
        strict_tool(
            list_task_types,
            annotations=read_only("Task types"),
        )
    ]


@friendly_errors
async def list_task_types(
    ctx: Context,
    type: Annotated[
        str | None,
        Field(
            max_length=100,
            description="one task type (or an alias of one): adds its full config JSON Schema",
        ),
    ] = None,
) -> TaskTypeList:
    """The task types an orchestration can use: for each, what it does, its config fields
    (`required` and `optional`) and an example task. Call this before writing a document for
    submit_orchestration, and list_task_types(type="http") for one type's full config schema.
    """
    engine = tool_context(ctx).engine
    names = list(registry.type_names()) if type is None else [_known_type(type)]
    return TaskTypeList(
        task_types=[_info(engine, name, detailed=type is not None) for name in names],
        document_schema_hint=DOCUMENT_HINT,
        detail=None
        if type is not None
        else 'list_task_types(type="NAME") gives one type\'s full config JSON Schema',
    )


def _known_type(name: str) -> str:
    canonical = registry.canonical(name)
    if canonical is not None:
        return canonical
    names = [*registry.type_names(), *registry.aliases()]
    hint = did_you_mean(name, names)
    raise ToolError(
        f"no task type '{name}'{f'; {hint}' if hint else ''} "
        f"(types: {', '.join(registry.type_names())})"
    )


def _info(engine: Engine, name: str, *, detailed: bool) -> TaskTypeInfo:
    aliases = sorted(registry.aliases_of(name)) or None
    runner = engine.runners().get(name)
    if runner is None:
        reason = engine.disabled_types.get(name)
        summary = f"disabled on this server: {reason}" if reason else NOT_YET
        return TaskTypeInfo(type=name, aliases=aliases, available=False, summary=summary)
    schema: dict[str, Any] = runner.config_model.model_json_schema()
    required = list(schema.get("required", []))
    return TaskTypeInfo(
        type=name,
        aliases=aliases,
        available=True,
        summary=runner.summary,
        required=required,
        optional=[name for name in schema.get("properties", {}) if name not in required],
        example=runner.example if detailed else _minimal(runner.example),
        config_schema=schema if detailed else None,
    )


def _minimal(example: dict[str, Any]) -> dict[str, Any]:
    """An example task without what every type shares (retry, an empty dependency list)."""
    return {
        key: value
        for key, value in example.items()
        if key in ("id", "type", "config") or (key == "dependencies" and value)
    }
