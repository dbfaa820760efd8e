"""The MCP tools: thin, typed wrappers over engine/ and vault/.

``register_all`` adds every tool, resource and the prompt to an ``MCPServer``; the server
hands the tools their engine through the lifespan (``tools.context.ToolContext``).
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from tools import catalog, orchestrations, prompts, reports, resources, vault


def register_all(mcp: MCPServer) -> None:
    orchestrations.register(mcp)
    catalog.register(mcp)
    reports.register(mcp)
    vault.register(mcp)
    resources.register(mcp)
    prompts.register(mcp)
