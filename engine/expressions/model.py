"""The reference language's values: a parsed ``Reference``, the ``Scope`` references read,
``ExpressionError``, and how a reference and a path are written in messages."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ReferenceKind = Literal["task", "vars", "item", "index", "vault"]
Location = tuple[str | int, ...]
Step = str | int

TASK_FIELDS = ("output", "state", "error")
INPUT_KEYS = frozenset({"inputs", "input"})
RESERVED_ROOTS = frozenset({"vars", "item", "index", "vault"})

_JMESPATH_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ExpressionError(Exception):
    """A reference that cannot be parsed or resolved; ``hint`` says how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


@dataclass(frozen=True, slots=True)
class Reference:
    """One parsed ``${...}``: where its value comes from and the JMESPath applied there.

    ``path`` has no leading dot: ``"output.items[0]"`` for a task, ``"a.b"`` for vars, the secret's
    name for vault, ``""`` for none. For a whole-scope expression (``expression=True``) ``root`` and
    ``path`` describe one name the expression reads and the plain steps that follow it.
    """

    text: str
    root: str
    path: str
    kind: ReferenceKind
    expression: bool = False


@dataclass(slots=True)
class Scope:
    """What references can see: finished tasks (id -> output, state, error), vars, the item."""

    outputs: Mapping[str, Any]
    vars: Mapping[str, Any] = field(default_factory=dict)
    item: Any = None
    index: int | None = None
    has_item: bool = False


def show(text: str) -> str:
    """A reference as a message quotes it: ``'${text}'``, cut at 80 characters."""
    shown = text if len(text) <= 80 else text[:77] + "..."
    return f"'${{{shown}}}'"


def format_steps(steps: tuple[Step, ...]) -> str:
    """Plain steps written back as a JMESPath path (``a."my-key"[0]``), without a leading dot."""
    text = ""
    for step in steps:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            name = step if _JMESPATH_IDENTIFIER.fullmatch(step) else json.dumps(step)
            text += f".{name}" if text else name
    return text
