"""The stand-in's answers, made from the conversation: a text quoting the prompt, or a JSON
value satisfying the simple schema found after "JSON Schema:" (object, properties, required,
string, integer, number, boolean, array, enum); and the token counts (four characters each)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from multi_task_orchestrator.server.standin_model.state import NOTICE

_SCHEMA_MARKER = "JSON Schema:"
_WORD = re.compile(r"[\w'-]+")


def tokens(text: str) -> int:
    """About four characters a token, as the providers' tokenizers average on English."""
    return max(1, math.ceil(len(text) / 4))


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or a list of blocks with ``text`` (or, for a
    tool result, ``content``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(b.get("text", "")) if "text" in b else text_of(b.get("content"))
            for b in content
            if isinstance(b, dict)
        )
    return ""


def _schema_in(text: str) -> dict[str, Any] | None:
    """The JSON object after the last "JSON Schema:" in ``text``, if any."""
    at = text.rfind(_SCHEMA_MARKER)
    start = text.find("{", at) if at >= 0 else -1
    if start < 0:
        return None
    try:
        schema, _ = json.JSONDecoder().raw_decode(text, start)
    except ValueError:
        return None
    return schema if isinstance(schema, dict) else None


def _value_for(schema: Any, name: str, words: list[str]) -> Any:
    """A value satisfying the simple ``schema``, made from the prompt's ``words``."""
    if not isinstance(schema, dict):
        return f"stand-in {name}"
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {key: _value_for(sub, key, words) for key, sub in properties.items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 0)), min(2, int(schema.get("maxItems", 2))))
        items = schema.get("items", {"type": "string"})
        return [_value_for(items, f"{name} {i + 1}", words[i:]) for i in range(count)]
    if kind == "integer":
        return max(int(schema.get("minimum", 0)), len(words))
    if kind == "number":
        return float(max(schema.get("minimum", 0), len(words)))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string_for(schema, name, words)


def _string_for(schema: dict[str, Any], name: str, words: list[str]) -> str:
    lead = " ".join(words[:6]) or "nothing"
    if name == "slug":
        text = "-".join(w.lower() for w in words[:6]) or "stand-in"
    elif name in ("title", "headline", "name"):
        text = f"Stand-in: {lead}"
    else:
        text = f"Stand-in {name} about: {lead}"
    minimum, maximum = int(schema.get("minLength", 0)), schema.get("maxLength")
    text = text.ljust(minimum, ".")
    return text[: int(maximum)] if maximum is not None else text


def answer_for(
    conversation: str, prompt: str, *, invalid: bool, tool_results: list[str] | None = None
) -> str:
    """The answer to ``conversation`` (every text sent) whose first user message is ``prompt``;
    after tool calls, a text answer quotes the last result (``tool_results``)."""
    words = _WORD.findall(prompt)
    if "JSON" not in conversation:
        if tool_results:
            return (
                f"[{NOTICE}] After {len(tool_results)} tool call(s), the last one gave: "
                f"{tool_results[-1]}"
            )
        quoted = " ".join(words[:12])
        more = "…" if len(words) > 12 else ""
        return f'[{NOTICE}] You asked: "{quoted}{more}". This text comes from a {NOTICE}.'
    if invalid:
        return f'Here is the JSON ({NOTICE}): {{"answer": "unfinished'
    schema = _schema_in(conversation)
    if schema is None:
        value: Any = {"answer": f"Stand-in answer about: {' '.join(words[:6])}", "stand_in": True}
    else:
        value = _value_for(schema, "answer", words)
    return json.dumps(value, ensure_ascii=False)


def cut(answer: str, max_tokens: Any) -> tuple[str, bool]:
    """``answer`` cut to ``max_tokens`` (about four characters each); whether it was cut."""
    if isinstance(max_tokens, int) and tokens(answer) > max_tokens:
        return answer[: max_tokens * 4], True
    return answer, False
