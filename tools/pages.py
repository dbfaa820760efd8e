"""Pages of outputs that fit an answer: whole outputs while they fit, else a valid part of one.

An answer holds outputs in task order until ``max_chars`` of JSON is used. An output too large
for an answer on its own is shown in part, the part still valid JSON: a run of a list's items,
of an object's keys, or of a string's characters, from ``item_offset`` on. An item larger than
a whole answer is skipped and named, so the caller can reach into it with a ``query``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

PartKind = Literal["items", "keys", "characters"]


@dataclass(slots=True)
class Part:
    """Which part of one output a page shows: ``[start, end)`` of ``total``."""

    task: str
    kind: PartKind
    start: int
    end: int
    total: int
    too_large: list[int] = field(default_factory=list)  # positions skipped: each alone too large
    reach: str | None = None  # how a query reaches the first of them: "[3]" or '."name"'


@dataclass(slots=True)
class Page:
    outputs: dict[str, Any]
    next_offset: int | None = None  # where the next page starts (an output's position) ...
    next_item_offset: int = 0  # ... and where inside that output
    part: Part | None = None


def size(value: Any, limit: int | None = None) -> int:
    """The characters ``value`` takes as JSON; with ``limit``, any number above it stands for
    "more than ``limit``" and is found without writing the JSON of a large value (a 200 MB
    output took a second to write, the interpreter lock held all along)."""
    if limit is not None and _longer_than(value, limit):
        return limit + 1
    return len(json.dumps(value, default=str, ensure_ascii=False))


def _longer_than(value: Any, limit: int) -> bool:
    """Whether the JSON of ``value`` surely has more than ``limit`` characters: its strings
    with their quotes, one character at least for any other value, its brackets and commas,
    counted until they pass ``limit`` (so the walk is never longer than ``limit`` steps)."""
    counted = 0
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            counted += len(item) + 2
        elif isinstance(item, dict):
            # braces, ": " after each key and ", " between entries
            counted += 2 + 2 * len(item) + 2 * max(0, len(item) - 1)
            for key, inner in item.items():
                counted += len(key) + 2 if isinstance(key, str) else 1
                pending.append(inner)
        elif isinstance(item, list | tuple):
            counted += 2 + 2 * max(0, len(item) - 1)  # brackets, ", " between items
            pending.extend(item)
        else:
            counted += 1
        if counted > limit:
            return True
    return False


def page_outputs(
    outputs: list[tuple[str, Any]], *, offset: int, item_offset: int, max_chars: int
) -> Page:
    """The outputs from ``offset`` (and, inside the first, from ``item_offset``) that fit."""
    page = Page(outputs={})
    used = 0
    for index in range(offset, len(outputs)):
        task_id, value = outputs[index]
        start = item_offset if index == offset else 0
        cost = size(value, max_chars) if start == 0 else None
        if cost is not None and used + cost <= max_chars:
            page.outputs[task_id] = value
            used += cost
            continue
        if page.outputs:  # the next page starts with it
            page.next_offset = index
            return page
        piece, part = _part(task_id, value, start, max_chars)
        page.outputs[task_id] = piece
        page.part = part
        if part.end < part.total:
            page.next_offset, page.next_item_offset = index, part.end
        elif index + 1 < len(outputs):
            page.next_offset = index + 1
        return page
    return page


def _part(task_id: str, value: Any, start: int, budget: int) -> tuple[Any, Part]:
    if isinstance(value, str):
        return _characters(task_id, value, start, budget)
    if isinstance(value, dict):
        keys, part = _run(task_id, "keys", list(value.items()), start, budget)
        return dict(keys), part
    if isinstance(value, list):
        return _run(task_id, "items", value, start, budget)
    return value, Part(task_id, "items", 0, 1, 1)  # a number or a boolean is never large


def _characters(task_id: str, text: str, start: int, budget: int) -> tuple[str, Part]:
    count = max(1, budget - 2)
    piece = text[start : start + count]
    while len(piece) > 1 and size(piece) > budget:  # escapes make JSON longer than the text
        count = max(1, count * budget // size(piece) - 1)
        piece = text[start : start + count]
    return piece, Part(task_id, "characters", start, start + len(piece), len(text))


def _run(
    task_id: str, kind: PartKind, items: list[Any], start: int, budget: int
) -> tuple[list[Any], Part]:
    chosen: list[Any] = []
    too_large: list[int] = []
    reach: str | None = None
    used = 2  # the brackets
    position = start
    while position < len(items):
        item = items[position]
        # with the ", " before it; {key: value} counts its braces in place of the ", "
        cost = size(item, budget) + 2 if kind == "items" else size({item[0]: item[1]}, budget)
        if cost + 2 > budget:
            too_large.append(position)
            if reach is None:
                reach = f"[{position}]" if kind == "items" else f".{json.dumps(item[0])}"
        elif used + cost > budget:
            break
        else:
            chosen.append(item)
            used += cost
        position += 1
    return chosen, Part(task_id, kind, start, position, len(items), too_large, reach)
