"""``list_mcp_tools``: the MCP servers ``mcp`` tasks may call, each with its tools.

Each configured server is asked for its tools at once (a local server is started, its session
kept for the tasks that follow); a server that cannot start or answer is shown with why. The
answer is bounded: at most ``MAX_TOOLS`` tools per server, each description one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import ToolAnnotations
from pydantic import Field

from multi_task_orchestrator.engine import did_you_mean
from multi_task_orchestrator.tools.context import tool_context
from multi_task_orchestrator.tools.errors import friendly_errors
from multi_task_orchestrator.tools.models import McpServerInfo, McpToolInfo, McpToolList
from multi_task_orchestrator.tools.strict import strict_tool

if TYPE_CHECKING:  # the mcp runner's modules: imported when the tool is called
    from multi_task_orchestrator.engine import ServerTools

MAX_TOOLS = 100
USAGE = (
    "A task calls one tool: {id: ..., type: mcp, config: {server: NAME, tool: TOOL, "
    "arguments: {...}}}; the output is the tool's structured content, else its text. "
    "for_each fans calls out over the server's one session."
)
NO_SERVERS = (
    "No MCP servers are configured. The person running this server names them in a JSON file "
    "in the mcpServers format (as Claude Desktop uses) and sets ORCHESTRATOR_MCP_SERVERS to "
    "its path."
)


def tools() -> list[Tool]:
    return [
        strict_tool(
            list_mcp_tools,
            annotations=ToolAnnotations(
                title="Other MCP servers' tools",
                read_only_hint=True,
                destructive_hint=False,
                idempotent_hint=True,
                open_world_hint=True,  # starts or calls the configured servers
            ),
        )
    ]


@friendly_errors
async def list_mcp_tools(
    ctx: Context,
    server: Annotated[
        str | None,
        Field(max_length=200, description="only this server (by its name in the servers file)"),
    ] = None,
) -> McpToolList:
    """The other MCP servers this orchestrator can call in `mcp` tasks, each with its tools
    (name, one-line description, argument names). Call this before writing a document with
    `mcp` tasks; servers that cannot start are listed with why.
    """
    from multi_task_orchestrator.engine import McpRunner, McpSettings

    state = tool_context(ctx)
    engine = state.engine
    runner = engine.runner("mcp") if "mcp" in engine.available_types else None
    if not isinstance(runner, McpRunner):
        return McpToolList(servers=[], note="the mcp task type is not available here", usage=USAGE)
    file = runner.settings_as(McpSettings).servers
    names = runner.server_names()
    if server is not None and server not in names:
        hint = did_you_mean(server, names)
        listed = ", ".join(sorted(names)) or "none"
        raise ToolError(
            f"no MCP server '{server}' is configured"
            + (f"; {hint}" if hint else "")
            + f" (configured: {listed})"
        )
    found = await runner.catalog(
        engine.network,
        engine.secrets,
        timeout=state.max_wait_seconds,
        only=server,
    )
    servers = [_shown(entry) for entry in found]
    return McpToolList.model_validate(
        engine.redact_data(
            McpToolList(
                servers=servers,
                servers_file=str(file) if file is not None else None,
                note=None if names else NO_SERVERS,
                usage=USAGE,
            ).model_dump(mode="json")
        )
    )


def _shown(entry: ServerTools) -> McpServerInfo:
    kept = entry.tools[:MAX_TOOLS]
    return McpServerInfo(
        name=entry.name,
        transport=entry.transport,
        target=entry.target,
        tools=[
            McpToolInfo(
                name=tool.name,
                description=tool.description,
                arguments=tool.arguments,
                required=tool.required,
            )
            for tool in kept
        ],
        tools_omitted=len(entry.tools) - len(kept),
        error=entry.error,
    )
