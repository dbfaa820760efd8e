"""What a tool call gives back, as a task's output; and a server's tools, described briefly.

A result's ``structuredContent`` is the output when the tool gives one. Otherwise its content
is: the text of its text items joined by new lines when every item is text, else a list with
each text item as its text and every other item (an image, a resource link...) as its JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the MCP SDK's client stack takes ~1 s to import: only a run needs it
    from mcp.types import CallToolResult, ContentBlock, Tool

DESCRIPTION_LENGTH = 160


def tool_output(result: CallToolResult) -> Any:
    """The task's output for a successful call (see the module docstring)."""
    if result.structured_content is not None:
        return result.structured_content
    items = result.content
    if all(item.type == "text" for item in items):
        return "\n".join(item.text for item in items if item.type == "text")
    return [_item(item) for item in items]


def tool_text(result: CallToolResult) -> str:
    """The text a result carries (an error's message), its other items named by type."""
    parts = [item.text if item.type == "text" else f"<{item.type}>" for item in result.content]
    return "\n".join(parts).strip() or "(the tool gave no text)"


def _item(item: ContentBlock) -> Any:
    if item.type == "text":
        return item.text
    return item.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass(frozen=True, slots=True)
class ToolSummary:
    """One tool as an agent needs it to write a task: name, what it does, its arguments."""

    name: str
    description: str
    arguments: list[str]
    required: list[str]


def summarize(tool: Tool) -> ToolSummary:
    """``tool`` briefly: the first line of its description (cut), its argument names."""
    lines = (tool.description or "").strip().splitlines()
    line = lines[0].strip() if lines else ""
    if len(line) > DESCRIPTION_LENGTH:
        line = line[: DESCRIPTION_LENGTH - 1] + "…"
    schema = tool.input_schema if isinstance(tool.input_schema, dict) else {}
    properties = schema.get("properties")
    required = schema.get("required")
    return ToolSummary(
        name=tool.name,
        description=line,
        arguments=[str(name) for name in properties] if isinstance(properties, dict) else [],
        required=[str(name) for name in required] if isinstance(required, list) else [],
    )
