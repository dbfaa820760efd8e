"""The tools one agent attempt may call: listed from the ``mcp`` runner's shared sessions (one
per server, for the engine's life: the agent opens none of its own), offered to the model under
names both wire formats accept, and called through the same sessions.

A tool is offered as ``SERVER__TOOL`` (characters other than letters, digits, ``_`` and ``-``
become ``_``; cut to 64 characters, made unique), and shown in events and the status as
``SERVER.TOOL``. A call that fails — the tool's ``isError``, a server error, an unknown tool,
arguments that are not a JSON object — is answered to the model as an error result, never
fails the task; the result's text (its content's text, else its structured content as JSON) is
redacted as it arrives and cut to ``MAX_RESULT_CHARS``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from multi_task_orchestrator.engine.errors import ConfigError, TaskError
from multi_task_orchestrator.engine.issues import did_you_mean
from multi_task_orchestrator.engine.runners.agent.config import ToolSource
from multi_task_orchestrator.engine.runners.base import RunContext
from multi_task_orchestrator.engine.runners.llm.tool_use import ToolCall, ToolResult, ToolSpec
from multi_task_orchestrator.engine.runners.mcp import McpRunner
from multi_task_orchestrator.engine.runners.mcp.results import tool_output, tool_text

if TYPE_CHECKING:  # the MCP SDK's client stack takes ~1 s to import: only a run needs it
    from mcp.types import CallToolResult, Tool

    from multi_task_orchestrator.engine.runners.mcp.session import ServerSession

MAX_NAME = 64  # OpenAI's limit on a function's name (Anthropic's is 128)
MAX_DESCRIPTION = 1024
MAX_RESULT_CHARS = 50_000
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class _Entry:
    session: ServerSession
    tool: Tool

    @property
    def label(self) -> str:
        return f"{self.session.name}.{self.tool.name}"


class Toolbox:
    """The offered tools, by the name the model calls them."""

    def __init__(self, entries: dict[str, _Entry]) -> None:
        self._entries = entries

    @classmethod
    async def open(
        cls, sources: list[ToolSource], mcp: McpRunner | None, ctx: RunContext
    ) -> Toolbox:
        """The tools of ``sources``, listed from their servers' sessions; ConfigError for a
        server or a tool that is not there."""
        if not sources:
            return cls({})
        if mcp is None:
            raise ConfigError(
                "the agent's tools come from MCP servers, but the mcp task type is not "
                "available where this attempt runs (agent tasks with tools run on the server's "
                "own backend, not on Dask workers)"
            )
        entries: dict[str, _Entry] = {}
        for source in sources:
            session = mcp.session(source.server)
            listed = await session.tools(ctx.network, ctx.secrets)
            for tool in _chosen(source, listed):
                entries[_unique(_model_name(session.name, tool.name), entries)] = _Entry(
                    session, tool
                )
        return cls(entries)

    def specs(self) -> list[ToolSpec]:
        return [
            ToolSpec(name, _description(entry), _input_schema(entry.tool))
            for name, entry in self._entries.items()
        ]

    def labels(self) -> list[str]:
        return [entry.label for entry in self._entries.values()]

    def label(self, name: str) -> str:
        """``SERVER.TOOL`` for an offered name; the name itself for one that is not."""
        entry = self._entries.get(name)
        return entry.label if entry is not None else name

    async def call(
        self, call: ToolCall, ctx: RunContext, on_wait: Callable[[str | None], None]
    ) -> ToolResult:
        """Run ``call`` through its server's session; a failure is an error result."""
        entry = self._entries.get(call.name)
        if entry is None:
            hint = did_you_mean(call.name, self._entries)
            offered = ", ".join(self._entries) or "none"
            return ToolResult(
                call.id,
                f"there is no tool '{call.name}'{'; ' + hint if hint else ''} (tools: {offered})",
                is_error=True,
            )
        if call.problem is not None:
            return ToolResult(call.id, f"the call was not made: {call.problem}", is_error=True)
        try:
            result = await entry.session.call(
                entry.tool.name, call.arguments, ctx.network, ctx.secrets, on_wait=on_wait
            )
        except TaskError as exc:
            return ToolResult(call.id, _cut(ctx.secrets.redact(exc.message)), is_error=True)
        if result.is_error:
            return ToolResult(call.id, _cut(ctx.secrets.redact(tool_text(result))), is_error=True)
        return ToolResult(call.id, _cut(ctx.secrets.redact(_model_text(result))))


def _chosen(source: ToolSource, listed: list[Tool]) -> list[Tool]:
    if source.only is None:
        return listed
    by_name = {tool.name: tool for tool in listed}
    for name in source.only:
        if name not in by_name:
            hint = did_you_mean(name, by_name)
            raise ConfigError(
                f"MCP server '{source.server}' has no tool '{name}'"
                + (f"; {hint}" if hint else "")
                + f" (its tools: {', '.join(sorted(by_name)) or 'none'})"
            )
    return [by_name[name] for name in dict.fromkeys(source.only)]


def _model_name(server: str, tool: str) -> str:
    return _UNSAFE.sub("_", f"{server}__{tool}")[:MAX_NAME]


def _unique(name: str, taken: dict[str, Any]) -> str:
    found, number = name, 2
    while found in taken:
        suffix = f"_{number}"
        found, number = name[: MAX_NAME - len(suffix)] + suffix, number + 1
    return found


def _description(entry: _Entry) -> str:
    text = (entry.tool.description or "").strip() or f"the tool {entry.tool.name}"
    text = f"{text} (MCP server {entry.session.name})"
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def _input_schema(tool: Tool) -> dict[str, Any]:
    schema = tool.input_schema if isinstance(tool.input_schema, dict) else {}
    return schema if schema.get("type") == "object" else {"type": "object", "properties": {}}


def _model_text(result: CallToolResult) -> str:
    """A result as the model reads it: its content's text (what MCP says is for models), else
    its structured content as JSON."""
    if result.content or result.structured_content is None:
        return tool_text(result)
    output = tool_output(result)
    return output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)


def _cut(text: str) -> str:
    if len(text) <= MAX_RESULT_CHARS:
        return text
    return text[:MAX_RESULT_CHARS] + f"\n… ({len(text) - MAX_RESULT_CHARS} characters cut)"
