"""Where one attempt of a task's runner executes.

The scheduler, the state and the secrets stay in the engine; a backend only runs
``runner.run(config, ctx)`` for one attempt and hands back its output (or raises its error).
``LocalBackend`` (the default) awaits it on this event loop; a cluster backend ships it to a
worker. A backend is chosen when the engine is built (``Engine(backend=...)``).
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel

from multi_task_orchestrator.engine.runners.base import RunContext, Runner


class Backend(Protocol):
    """Runs one attempt of one task."""

    async def run_attempt(self, runner: Runner, config: BaseModel, ctx: RunContext) -> Any:
        """The attempt's output; raise engine.errors.TaskError (or any error) to fail it."""
        ...

    async def aclose(self) -> None:
        """Release what the backend holds (connections, clusters)."""
        ...
