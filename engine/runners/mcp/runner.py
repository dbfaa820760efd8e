"""The ``mcp`` task: one tool call on another MCP server, named in the servers file.

Config: ``server`` (a name in the servers file), ``tool``, ``arguments`` (references such as
``${fetch.output}`` allowed) and ``timeout``. The runner keeps one ``ServerSession`` per
server for the engine's life: every task and every ``for_each`` child of every run shares it,
at most ``concurrency`` calls at once.

Output: the tool's ``structuredContent``, else its content (``results.py``), redacted as it
arrives. A result with ``isError`` fails the attempt with class ``tool_error`` and the tool's
text. An unknown server or tool fails with class ``config`` naming what is there.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from multi_task_orchestrator.engine.document.units import Duration
from multi_task_orchestrator.engine.errors import ConfigError, TaskError
from multi_task_orchestrator.engine.issues import did_you_mean
from multi_task_orchestrator.engine.network import Network
from multi_task_orchestrator.engine.runners.base import RunContext, Runner, RunnerConfig
from multi_task_orchestrator.engine.runners.mcp.results import (
    ToolSummary,
    summarize,
    tool_output,
    tool_text,
)
from multi_task_orchestrator.engine.runners.mcp.servers import RemoteServer
from multi_task_orchestrator.engine.runners.mcp.settings import McpSettings
from multi_task_orchestrator.engine.secrets import NoVault, SecretResolver, redact_data

if TYPE_CHECKING:
    from multi_task_orchestrator.engine.runners.mcp.session import ServerSession

NAMES_SHOWN = 30  # tool names an error lists


class McpConfig(RunnerConfig):
    """Config of an ``mcp`` task."""

    server: str = Field(
        min_length=1,
        description="the MCP server, by its name in the servers file (ORCHESTRATOR_MCP_SERVERS); "
        "list_mcp_tools shows them",
    )
    tool: str = Field(min_length=1, description="the tool to call")
    arguments: dict[str, Any] = Field(
        default_factory=dict,
        description="the tool's arguments; values may be references such as ${fetch.output}",
    )
    timeout: Duration | None = Field(None, gt=0, description="limit on the call, e.g. 60s")


@dataclass(slots=True)
class ServerTools:
    """One configured server as ``list_mcp_tools`` shows it: its tools, or why there are none."""

    name: str
    transport: str
    target: str
    tools: list[ToolSummary] = field(default_factory=list)
    error: str | None = None


class McpRunner(Runner[McpConfig]):
    """Calls a tool on a configured MCP server; see the module docstring."""

    type_name: ClassVar[str] = "mcp"
    aliases: ClassVar[tuple[str, ...]] = ("mcp_tool",)
    listing_rank: ClassVar[int] = 55
    config_model: ClassVar[type[McpConfig]] = McpConfig
    settings_model: ClassVar[type[McpSettings]] = McpSettings
    error_classes: ClassVar[frozenset[str]] = frozenset({"tool_error"})
    summary: ClassVar[str] = (
        "Calls one tool on another MCP server (stdio or streamable HTTP) named in the servers "
        "file (ORCHESTRATOR_MCP_SERVERS); one shared session per server; output: the tool's "
        "structured content, else its text. list_mcp_tools shows the servers' tools."
    )
    example: ClassVar[dict[str, Any]] = {
        "id": "read_notes",
        "type": "mcp",
        "config": {
            "server": "files",
            "tool": "read_text_file",
            "arguments": {"path": "/data/notes.md"},
            "timeout": "30s",
        },
        "retry": {"max_attempts": 2, "on": ["network", "timeout"]},
        "dependencies": [],
    }

    # the servers file, its stdio servers and the pooled sessions are the server's
    runs_in_engine: ClassVar[bool] = True

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        chosen = self.settings_as(McpSettings)
        configured = chosen.configured()
        self._sessions: dict[str, ServerSession] = {}
        if configured:
            # the MCP SDK's client stack takes ~1 s to import: only when servers are configured
            from multi_task_orchestrator.engine.runners.mcp.session import ServerSession

            self._sessions = {
                name: ServerSession(
                    spec, concurrency=chosen.concurrency, connect_timeout=chosen.connect_timeout
                )
                for name, spec in configured.items()
            }

    def session(self, server: str) -> ServerSession:
        """The session of a configured server; ConfigError naming the configured ones if not."""
        session = self._sessions.get(server)
        if session is not None:
            return session
        file = self.settings_as(McpSettings).servers
        if not self._sessions:
            raise ConfigError(
                f"no MCP server '{server}': no MCP servers are configured"
                + (
                    f" ({file} names none)"
                    if file
                    else "; set ORCHESTRATOR_MCP_SERVERS to a "
                    "servers file in the mcpServers format (see the README's mcp section)"
                )
            )
        hint = did_you_mean(server, self._sessions)
        listed = ", ".join(sorted(self._sessions))
        raise ConfigError(
            f"no MCP server '{server}' in {file}"
            + (f"; {hint}" if hint else "")
            + f" (configured: {listed})"
        )

    async def run(self, config: McpConfig, ctx: RunContext) -> Any:
        session = self.session(config.server)
        label = f"{config.server}/{config.tool}"
        try:
            async with asyncio.timeout(config.timeout):
                await self._check_tool(session, config.tool, ctx.network, ctx.secrets)
                result = await session.call(
                    config.tool,
                    config.arguments,
                    ctx.network,
                    ctx.secrets,
                    on_wait=ctx.waiting,
                )
        except TimeoutError:
            raise TaskError(
                f"MCP tool {label} did not answer within {config.timeout:g} s", "timeout"
            ) from None
        redacting = not isinstance(ctx.secrets, NoVault)
        if result.is_error:
            text = tool_text(result)
            raise TaskError(
                f"MCP tool {label} failed: {ctx.secrets.redact(text) if redacting else text}",
                "tool_error",
            )
        output = tool_output(result)
        ctx.log(f"MCP tool {label} answered")
        return redact_data(output, ctx.secrets.redact) if redacting else output

    async def _check_tool(
        self, session: ServerSession, tool: str, network: Network, secrets: SecretResolver
    ) -> None:
        """ConfigError naming the server's tools when it has no ``tool`` (listed again once, in
        case the server's tools changed)."""
        names = [listed.name for listed in await session.tools(network, secrets)]
        if tool in names:
            return
        names = [listed.name for listed in await session.tools(network, secrets, refresh=True)]
        if tool in names:
            return
        hint = did_you_mean(tool, names)
        shown = ", ".join(sorted(names)[:NAMES_SHOWN]) or "none"
        more = f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
        raise ConfigError(
            f"MCP server '{session.name}' has no tool '{tool}'"
            + (f"; {hint}" if hint else "")
            + f" (its tools: {shown}{more})"
        )

    # --- what list_mcp_tools shows --------------------------------------------------------------

    def server_names(self) -> list[str]:
        return list(self._sessions)

    async def catalog(
        self,
        network: Network,
        secrets: SecretResolver,
        *,
        timeout: float,
        only: str | None = None,
    ) -> list[ServerTools]:
        """Every configured server (or ``only`` that one) with its tools, listed at once; a
        server that cannot start or answer within ``timeout`` seconds is shown with why."""
        chosen = [s for s in self._sessions.values() if only is None or s.name == only]
        return list(
            await asyncio.gather(
                *(self._server_tools(s, network, secrets, timeout) for s in chosen)
            )
        )

    async def _server_tools(
        self, session: ServerSession, network: Network, secrets: SecretResolver, timeout: float
    ) -> ServerTools:
        remote = isinstance(session.spec, RemoteServer)
        shown = ServerTools(session.name, "http" if remote else "stdio", session.spec.shown)
        try:
            async with asyncio.timeout(timeout):
                tools = await session.tools(network, secrets)
        except TimeoutError:
            shown.error = f"no answer within {timeout:g} s"
        except TaskError as exc:
            shown.error = exc.message
        except Exception as exc:  # one server's trouble must not hide the others
            from multi_task_orchestrator.engine.runners.mcp.session import describe

            shown.error = describe(exc)
        else:
            shown.tools = [summarize(tool) for tool in tools]
        return shown

    async def aclose(self) -> None:
        await asyncio.gather(*(session.aclose() for session in self._sessions.values()))
