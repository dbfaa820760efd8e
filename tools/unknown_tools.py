"""``UnknownTools``: a ``tools/call`` naming no tool of this server is answered as a tool error
that names the closest tool and lists them all — the SDK says only ``Unknown tool: NAME``, and
the model's next try should not be a guess."""

from __future__ import annotations

from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent

from multi_task_orchestrator.engine import did_you_mean

QUOTED = 60  # characters of an unknown name quoted back


class UnknownTools:
    """Server middleware: a call of a tool ``server`` does not have is refused, saying which
    it has (asked of the server itself, so a tool added later counts)."""

    def __init__(self, server: MCPServer[Any]) -> None:
        self._server = server
        self._known: set[str] = set()

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method == "tools/call":
            name = str((ctx.params or {}).get("name", ""))
            if name not in self._known:
                names = [tool.name for tool in await self._server.list_tools()]
                self._known = set(names)
                if name not in self._known:
                    return _refusal(name, names)
        return await call_next(ctx)


def _refusal(name: str, names: list[str]) -> CallToolResult:
    hint = did_you_mean(name[:100], names)
    text = f"no tool {name[:QUOTED]!r}" + (f" ({hint})" if hint else "")
    text += f"; this server's tools: {', '.join(names)} (tools/list describes them)"
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
