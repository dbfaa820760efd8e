"""The ``mcp`` task type: one tool call on another MCP server, stdio or streamable HTTP.

- ``servers`` reads the servers file, in the standard ``mcpServers`` format.
- ``settings`` is the runner's settings model (``McpSettings``: the servers file, calls at once
  per server, the time a server has to start).
- ``session`` keeps one client session per server, shared by every task, reopened after the
  server went away, closed with the engine.
- ``transports`` reaches a server: a local process (its stderr kept for messages), or the
  engine's policy-checked HTTP client.
- ``results`` turns a tool's result into a task's output.
- ``runner`` is the task's config and run, and the servers' tools for ``list_mcp_tools``.
"""

from multi_task_orchestrator.engine.runners.mcp.runner import McpConfig, McpRunner, ServerTools
from multi_task_orchestrator.engine.runners.mcp.servers import (
    RemoteServer,
    ServersFileError,
    StdioServer,
    load_servers,
)
from multi_task_orchestrator.engine.runners.mcp.settings import McpSettings

RUNNER = McpRunner

__all__ = [
    "RUNNER",
    "McpConfig",
    "McpRunner",
    "McpSettings",
    "RemoteServer",
    "ServerTools",
    "ServersFileError",
    "StdioServer",
    "load_servers",
]
