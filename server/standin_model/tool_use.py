"""When tools are offered, which one the stand-in calls next, with which arguments.

One call a step, decided from the conversation alone (so every run of a document gets the same
calls): the number of tool results it already holds says which call comes next. The calls are
the control knob's script when one is set (``{"tool": NAME, "arguments": {...}}``, NAME matching
an offered tool's name or its part after ``__``), else the offered tools the prompt names, in
the order it names them, each with the arguments it can read after that mention: ``prop=value``
for each property of the tool's input schema (``path=/tmp/notes.txt``). When every call is made,
the stand-in answers (quoting the last result).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Offered:
    """A tool as the request offered it."""

    name: str
    schema: dict[str, Any]

    @property
    def short(self) -> str:
        """The name without its server prefix (``files__read_text_file`` -> ``read_text_file``)."""
        return self.name.rsplit("__", 1)[-1]


def offered_tools(body: dict[str, Any], openai: bool) -> list[Offered]:
    """The tools of a request, in either wire format."""
    found = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        if openai:
            function = tool.get("function") or {}
            name, schema = function.get("name"), function.get("parameters")
        else:
            name, schema = tool.get("name"), tool.get("input_schema")
        if isinstance(name, str):
            found.append(Offered(name, schema if isinstance(schema, dict) else {}))
    return found


def next_call(
    tools: list[Offered], prompt: str, done: int, script: list[dict[str, Any]] | None
) -> tuple[str, dict[str, Any]] | None:
    """The next call (tool name, arguments) after ``done`` results, or None: answer now."""
    if not tools:
        return None
    if script is not None:
        if done >= len(script):
            return None
        wanted = str(script[done].get("tool", ""))
        match = next((t for t in tools if wanted in (t.name, t.short)), None)
        arguments = script[done].get("arguments") or {}
        return (match.name if match else wanted), dict(arguments)
    mentions = _mentions(tools, prompt)
    if done >= len(mentions):
        return None
    tool, at = mentions[done]
    return tool.name, _arguments(tool, prompt[at:])


def _mentions(tools: list[Offered], prompt: str) -> list[tuple[Offered, int]]:
    """Each mention of an offered tool in ``prompt``, in order: (tool, where it ends)."""
    by_short = {tool.short: tool for tool in reversed(tools)}
    names = sorted(by_short, key=len, reverse=True)
    if not names:
        return []
    pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, names)) + r")(?![\w-])")
    return [(by_short[m.group(1)], m.end()) for m in pattern.finditer(prompt)]


def _arguments(tool: Offered, text: str) -> dict[str, Any]:
    properties = tool.schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    arguments: dict[str, Any] = {}
    for name, schema in properties.items():
        found = re.search(rf"(?<![\w-]){re.escape(name)}=(\S+)", text)
        if found:
            value = found.group(1).rstrip(".,;:)'\"")
            arguments[name] = _typed(value, schema if isinstance(schema, dict) else {})
    return arguments


def _typed(value: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind in ("integer", "number", "boolean", "array", "object"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def results_so_far(turns: list[Any], openai: bool) -> list[str]:
    """The texts of the tool results the conversation holds, in order."""
    found: list[str] = []
    for turn in turns:
        if not isinstance(turn, dict):
            continue
        if openai:
            if turn.get("role") == "tool":
                found.append(_text(turn.get("content")))
            continue
        content = turn.get("content")
        if turn.get("role") == "user" and isinstance(content, list):
            found += [
                _text(block.get("content"))
                for block in content
                if isinstance(block, dict) and block.get("type") == "tool_result"
            ]
    return found


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""
