"""What the tools need from the server, handed over as plain values by ``server/app.py``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mcp.server.mcpserver import Context

from multi_task_orchestrator.engine import Engine
from multi_task_orchestrator.vault.lazy import LazyVaultResolver


@dataclass(frozen=True, slots=True)
class ToolContext:
    """The engine and the limits the tools apply; the lifespan yields one of these."""

    engine: Engine
    home: Path
    max_wait_seconds: float = 50.0
    max_status_rows: int = 30  # as many rows as the display shows; get_results pages on
    vault: LazyVaultResolver | None = None  # opened by the first vault tool that needs it


def tool_context(ctx: Context) -> ToolContext:
    """The ToolContext of the running server."""
    state = ctx.request_context.lifespan_context
    if not isinstance(state, ToolContext):
        raise RuntimeError("the server was started without its engine (lifespan not run)")
    return state
