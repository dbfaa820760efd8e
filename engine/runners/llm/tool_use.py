"""Tool use in the two wire formats: the tools offered, the calls a model asks for, and the turns
that carry its calls and their results back into the conversation.

- Anthropic Messages: ``tools: [{name, description, input_schema}]``; the answer's ``tool_use``
  blocks ``{id, name, input}``; the results as one user turn of ``tool_result`` blocks
  ``{tool_use_id, content, is_error}``.
- OpenAI chat completions: ``tools: [{type: function, function: {name, description,
  parameters}}]``; the message's ``tool_calls`` ``{id, function: {name, arguments}}`` (arguments
  as JSON text); each result as a ``role: tool`` message ``{tool_call_id, content}`` (a failed
  call's content starts with ``ERROR:``, the format having no error flag).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model: its name (as the model calls it), what it does, its
    arguments' JSON Schema."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asked for. ``problem`` says why its arguments cannot be used (OpenAI
    sends them as text, which may not be a JSON object); the call is then answered with it."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a call gave back, as text for the model; ``is_error`` when it failed."""

    call_id: str
    text: str
    is_error: bool = False


def tools_option(provider: str, tools: list[ToolSpec]) -> list[dict[str, Any]]:
    """The request's ``tools`` in ``provider``'s format."""
    if provider == "anthropic":
        return [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema}
            for t in tools
        ]
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": t.input_schema,
            },
        }
        for t in tools
    ]


def anthropic_calls(content: list[Any]) -> tuple[ToolCall, ...]:
    """The ``tool_use`` blocks of an Anthropic answer."""
    calls = []
    for block in content:
        if getattr(block, "type", "") != "tool_use":
            continue
        given = getattr(block, "input", None)
        if isinstance(given, dict):
            calls.append(ToolCall(block.id, block.name, given))
        else:
            calls.append(ToolCall(block.id, block.name, problem="its input is not a JSON object"))
    return tuple(calls)


def openai_calls(tool_calls: list[Any] | None) -> tuple[ToolCall, ...]:
    """The function calls of an OpenAI message (arguments parsed from their JSON text)."""
    calls = []
    for call in tool_calls or []:
        function = getattr(call, "function", None)
        if function is None:  # a kind of tool call other than a function's
            continue
        try:
            arguments = json.loads(function.arguments or "{}")
        except ValueError as exc:
            calls.append(ToolCall(call.id, function.name, problem=f"arguments not JSON ({exc})"))
            continue
        if not isinstance(arguments, dict):
            calls.append(ToolCall(call.id, function.name, problem="arguments not a JSON object"))
            continue
        calls.append(ToolCall(call.id, function.name, arguments))
    return tuple(calls)


def assistant_turn(provider: str, text: str, calls: tuple[ToolCall, ...]) -> Message:
    """The model's answer as the conversation's next assistant turn."""
    if provider == "anthropic":
        blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        blocks += [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in calls
        ]
        return {"role": "assistant", "content": blocks or text or "(no answer)"}
    turn: Message = {"role": "assistant", "content": text or None}
    if calls:
        turn["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for c in calls
        ]
    return turn


def result_turns(provider: str, results: list[ToolResult]) -> list[Message]:
    """The calls' results as the turns that follow the assistant's."""
    if provider == "anthropic":
        blocks = [
            {"type": "tool_result", "tool_use_id": r.call_id, "content": r.text, "is_error": True}
            if r.is_error
            else {"type": "tool_result", "tool_use_id": r.call_id, "content": r.text}
            for r in results
        ]
        return [{"role": "user", "content": blocks}]
    return [
        {
            "role": "tool",
            "tool_call_id": r.call_id,
            "content": f"ERROR: {r.text}" if r.is_error else r.text,
        }
        for r in results
    ]
