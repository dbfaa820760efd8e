"""The agent's conversation as an artifact: each turn as it happened (the task, each answer with
the calls it asked for and its usage, each call's result), redacted, saved as JSON in the run's
artifacts folder under the task's name (``TASK-transcript.json``; a later attempt's
``TASK-transcript-attempt2.json``), whether the loop finished or was stopped."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

from multi_task_orchestrator.engine.atomic import write_atomic
from multi_task_orchestrator.engine.runners.base import RunContext
from multi_task_orchestrator.engine.secrets import redact_data

_UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


def transcript_name(ctx: RunContext) -> str:
    """The artifact's file name for this attempt."""
    stem = _UNSAFE_FILE_CHARACTERS.sub("_", ctx.task_id).strip("._") or "agent"
    suffix = "" if ctx.attempt <= 1 else f"-attempt{ctx.attempt}"
    return f"{stem}-transcript{suffix}.json"


@dataclass(slots=True)
class Transcript:
    """The turns so far, and how the loop ended."""

    provider: str
    model: str
    instructions: str | None
    tools: list[str]
    turns: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None
    error: str | None = None

    def add(self, role: str, step: int, **fields: Any) -> None:
        self.turns.append({"step": step, "role": role, **fields})

    async def save(self, ctx: RunContext) -> str:
        """Write it (redacted) to the artifacts folder; its file name."""
        name = transcript_name(ctx)
        document = {
            "task": ctx.task_id,
            "attempt": ctx.attempt,
            "provider": self.provider,
            "model": self.model,
            "instructions": self.instructions,
            "tools": self.tools,
            "turns": self.turns,
            "stop_reason": self.stop_reason,
            "error": self.error,
        }
        text = json.dumps(redact_data(document, ctx.secrets.redact), ensure_ascii=False, indent=2)
        await asyncio.to_thread(write_atomic, ctx.artifacts_dir / name, text)
        return name
