"""Strings scanned for ``${...}``: text, ``$${`` escapes, references (their closing brace found
past JMESPath's own braces and quotes) and an unclosed one; and the seed's bare form under
``inputs:``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from multi_task_orchestrator.engine.expressions.model import ExpressionError

_BARE_TASK_OUTPUT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\.output(?:\b.*)?")


@dataclass(frozen=True, slots=True)
class Text:
    """Text outside any reference."""

    text: str


@dataclass(frozen=True, slots=True)
class Escape:
    """``$${``: a literal ``${``."""


@dataclass(frozen=True, slots=True)
class Ref:
    """One ``${...}``; ``inner`` is what is between the braces."""

    inner: str
    raw: str  # exactly as written, ``${`` to ``}``


@dataclass(frozen=True, slots=True)
class Unclosed:
    """A ``${`` without its ``}``: the rest of the text."""

    raw: str


Segment = Text | Escape | Ref | Unclosed
_QUOTES = frozenset("'\"`")
_PLAIN_INNER = re.compile(r"[^{}'\"`]*}")  # up to the first '}', with no braces or quotes before
WHOLE_PLAIN_REFERENCE = re.compile(r"\$\{([^{}'\"`]*)}")


def scan(text: str) -> list[Segment]:
    """``text`` cut into its segments, in order; an unclosed reference ends it."""
    segments: list[Segment] = []
    position = 0
    while (start := text.find("${", position)) != -1:
        if start > position and text[start - 1] == "$":
            if start - 1 > position:
                segments.append(Text(text[position : start - 1]))
            segments.append(Escape())
            position = start + 2
            continue
        if start > position:
            segments.append(Text(text[position:start]))
        plain = _PLAIN_INNER.match(text, start + 2)  # what _closing_brace finds, when it is easy
        end = plain.end() - 1 if plain else _closing_brace(text, start + 2)
        if end is None:
            segments.append(Unclosed(text[start:]))
            return segments
        segments.append(Ref(text[start + 2 : end], text[start : end + 1]))
        position = end + 1
    if position < len(text):
        segments.append(Text(text[position:]))
    return segments


def _closing_brace(text: str, position: int) -> int | None:
    """Where the ``}`` closing a reference is, skipping JMESPath's braces and quoted parts."""
    depth = 0
    while position < len(text):
        char = text[position]
        if char in _QUOTES:
            position += 1
            while position < len(text) and text[position] != char:
                position += 2 if text[position] == "\\" else 1
            if position >= len(text):
                return None
        elif char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return position
            depth -= 1
        position += 1
    return None


def unclosed_error(raw: str) -> ExpressionError:
    """The error of an unclosed reference (``Unclosed.raw``)."""
    shown = raw if len(raw) <= 60 else raw[:57] + "..."
    return ExpressionError(
        f"'{shown}' has no closing '}}'",
        hint="close it with '}', or write '$${' for a literal '${'",
    )


def is_bare_reference(text: str) -> bool:
    """The seed's plain form, ``"extract_site_a.output"``, as written under ``inputs:``."""
    return _BARE_TASK_OUTPUT.fullmatch(text) is not None
