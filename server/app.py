"""The MCP server: an ``MCPServer`` whose lifespan owns the engine, with every tool attached.

The lifespan opens the state database, starts the engine (resuming what a previous process left
running) and the schedules' firing loop, and closes both cleanly at the end. Orchestrations run
in the background inside this process; a tool call never waits for work unless asked to. Over
streamable HTTP the lifespan is entered once, so every session shares one engine.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

import anyio
from mcp.server.mcpserver import MCPServer

from multi_task_orchestrator.engine import ScheduleFirer
from multi_task_orchestrator.server.build import build_engine
from multi_task_orchestrator.server.logs import REDACTION
from multi_task_orchestrator.tools import all_tools, live_view, register_all
from multi_task_orchestrator.tools.app import bind_live_view, live_view_app
from multi_task_orchestrator.tools.context import ToolContext
from multi_task_orchestrator.tools.prompts import PromptArguments
from multi_task_orchestrator.tools.resources import ArtifactMimeTypes, RecentRuns
from multi_task_orchestrator.tools.unknown_tools import UnknownTools

if TYPE_CHECKING:  # the model with the runners' fields is built when first used
    from multi_task_orchestrator.server.settings import Settings

logger = logging.getLogger("orchestrator.server")

INSTRUCTIONS = """\
Runs many tasks at once for you: submit a DAG of tasks (API calls, data processing, fan-outs
over lists) as one orchestration, get an id back at once, follow it, and fetch the results.
Typical flow: list_task_types -> validate_orchestration -> submit_orchestration ->
wait_for_orchestration (repeat until finished) -> get_results. The prompt plan_orchestration
explains the document format with an example. Credentials are referenced as ${vault.NAME}
and never appear in any answer."""


def _version() -> str:
    try:
        return version("multi-task-orchestrator")
    except PackageNotFoundError:
        return "0"


class Running:
    """The running server's ToolContext for what serves beside MCP (the ``/ui`` pages):
    set while the lifespan runs, None before and after."""

    def __init__(self) -> None:
        self.context: ToolContext | None = None


def create_server(settings: Settings, running: Running | None = None) -> MCPServer[ToolContext]:
    """The server for these settings; nothing is opened until a transport runs it. ``running``
    is handed the ToolContext while the server runs."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[ToolContext]) -> AsyncIterator[ToolContext]:
        opened = AsyncExitStack()
        built = await opened.enter_async_context(build_engine(settings, resume=True, vault="warm"))
        REDACTION.use(built.engine.redact)
        opened.callback(REDACTION.use, None)
        # the schedules fire while the server runs (and only then); stopped before the engine
        firer = ScheduleFirer(built.engine)
        firer.start()
        opened.push_async_callback(firer.aclose)
        resumed = list(built.engine.runs)
        if resumed:
            logger.info("resumed %d orchestration(s): %s", len(resumed), ", ".join(resumed))
        context = ToolContext(
            engine=built.engine,
            home=settings.home,
            max_wait_seconds=settings.max_wait_seconds,
            vault=built.vault,
        )
        if running is not None:
            running.context = context
            opened.callback(setattr, running, "context", None)
        try:
            yield context
        finally:
            # shielded: a signal cancels the transport, but the shutdown itself must complete
            with anyio.CancelScope(shield=True):
                await opened.aclose()
            logger.info("engine closed")

    mcp: MCPServer[ToolContext] = MCPServer(
        "multi-task-orchestrator",
        title="Multi-Task Orchestrator",
        instructions=INSTRUCTIONS,
        version=_version(),
        lifespan=lifespan,
        middleware=[ArtifactMimeTypes(), RecentRuns(), PromptArguments()],
        tools=bind_live_view(all_tools(max_wait_seconds=settings.max_wait_seconds)),
        extensions=[live_view_app()],
        log_level="WARNING",
    )
    mcp.middleware.append(UnknownTools(mcp))
    register_all(mcp)
    live_view.register(mcp)
    return mcp
