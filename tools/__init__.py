"""The MCP tools: thin, typed wrappers over engine/ and vault/.

``all_tools`` builds every tool (strict arguments, see ``tools.strict``) for the
``MCPServer``'s constructor; ``register_all`` adds the resources and the prompt. The server
hands the tools their engine through the lifespan (``tools.context.ToolContext``).
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool

from multi_task_orchestrator.tools import (
    approvals,
    catalog,
    mcp_servers,
    orchestrations,
    prompts,
    reports,
    resources,
    schedules,
    vault,
)


def all_tools(*, max_wait_seconds: float) -> list[Tool]:
    """Every tool, in the order tools/list shows them (the same on every call and restart);
    descriptions state the caps this server is configured with."""
    return [
        *orchestrations.tools(max_wait_seconds),
        *approvals.tools(),
        *catalog.tools(),
        *mcp_servers.tools(),
        *reports.tools(),
        *schedules.tools(),
        *vault.tools(),
    ]


def register_all(mcp: MCPServer) -> None:
    resources.register(mcp)
    prompts.register(mcp)
