"""What the stand-in has been told (keys, faults to give, answers to spoil, tool calls to ask
for) and what it has seen (every request)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

NOTICE = "local stand-in model, not a real one"


@dataclass
class Fault:
    """One call to fail: with this status and, when given, a ``retry-after`` header."""

    status: int
    retry_after: float | None = None


@dataclass
class StandinState:
    """What the server has been told and has seen; written on the server's thread."""

    keys: frozenset[str] | None = None  # the keys accepted; None: any key of the right shape
    require_key: bool = True
    faults: deque[Fault] = field(default_factory=deque)
    invalid_answers: int = 0
    # the tool calls a conversation asks for, in order ({"tool": NAME, "arguments": {...}});
    # None: the tools the prompt names (see tool_use.py)
    tool_script: list[dict[str, Any]] | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)

    def fail_next(
        self, count: int = 1, status: int = 429, retry_after: float | None = None
    ) -> None:
        """Fail the next ``count`` calls with ``status``."""
        self.faults.extend(Fault(status, retry_after) for _ in range(count))

    def answer_invalid_json_next(self, count: int = 1) -> None:
        """Answer the next ``count`` calls that ask for JSON with something that is not."""
        self.invalid_answers += count

    def script_tool_calls(self, calls: list[dict[str, Any]] | None) -> None:
        """Ask for these tool calls, one a step, in every conversation that offers tools
        (``None``: back to the tools the prompt names)."""
        self.tool_script = list(calls) if calls is not None else None

    def calls(self, path: str | None = None) -> list[dict[str, Any]]:
        """The model calls received (control requests left out), optionally at one path."""
        return [
            r
            for r in list(self.requests)
            if not r["path"].startswith("/_standin") and (path is None or r["path"] == path)
        ]
