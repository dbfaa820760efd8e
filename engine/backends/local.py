"""The default backend: run the attempt on this process's event loop."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from multi_task_orchestrator.engine.runners.base import RunContext, Runner


class LocalBackend:
    """Awaits the runner here; cancelling the attempt's task cancels the runner."""

    async def run_attempt(self, runner: Runner, config: BaseModel, ctx: RunContext) -> Any:
        return await runner.run(config, ctx)

    async def aclose(self) -> None:
        return None
