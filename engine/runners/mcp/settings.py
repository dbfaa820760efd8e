"""The ``mcp`` runner's settings: the servers file, the calls in flight per server, the time a
server has to start.

``ORCHESTRATOR_MCP_SERVERS`` names the servers file (``servers.py``); it is read and checked
when the settings are read, so a bad file stops the start with a message naming the file and
the problem (the CLI exits with code 2). ``servers()`` gives the parsed servers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, PrivateAttr, model_validator

from multi_task_orchestrator.engine.runners.mcp.servers import ServerSpec, load_servers

DEFAULT_CONCURRENCY = 4
DEFAULT_CONNECT_TIMEOUT = 30.0


def _readable_servers_file(path: Path | None) -> Path | None:
    """The path, once the file at it is read and checked (the error says what is wrong): the
    settings' error names the variable, so a bad file stops the start with a clear message."""
    if path is not None:
        load_servers(path)
    return path


class McpSettings(BaseModel):
    """Which MCP servers ``mcp`` tasks may call, and how hard they may be driven."""

    servers: Annotated[Path | None, AfterValidator(_readable_servers_file)] = Field(
        None,
        description="a JSON file in the standard `mcpServers` format (as Claude Desktop, Claude "
        "Code and Cursor use) naming the MCP servers `mcp` tasks may call; read at start; see "
        "[Calling other MCP servers](#calling-other-mcp-servers)",
    )
    concurrency: int = Field(
        DEFAULT_CONCURRENCY,
        ge=1,
        le=256,
        description="tool calls in flight to one MCP server at once, server-wide (a server's "
        "`concurrency` in the servers file wins)",
    )
    connect_timeout: float = Field(
        DEFAULT_CONNECT_TIMEOUT,
        gt=0,
        le=600,
        description="seconds an MCP server has to start (or answer, when remote) and complete "
        "the handshake",
    )
    _servers: dict[str, ServerSpec] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _read_servers_file(self) -> McpSettings:
        self._servers = load_servers(self.servers) if self.servers is not None else {}
        return self

    def configured(self) -> dict[str, ServerSpec]:
        """The servers of the file, by name (empty without one)."""
        return dict(self._servers)
