"""The MCP server: an ``MCPServer`` whose lifespan owns the engine, with every tool attached.

The lifespan opens the state database, starts the engine (resuming what a previous process left
running) and closes it cleanly at the end. Orchestrations run in the background inside this
process; a tool call never waits for work unless asked to. Over streamable HTTP the lifespan is
entered once, so every session shares one engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

import anyio
from mcp.server.mcpserver import MCPServer

from engine.engine import Engine
from server.settings import Settings, vault_resolver
from tools import register_all
from tools.context import ToolContext
from tools.resources import ArtifactMimeTypes
from vault.errors import VaultError

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


def create_server(settings: Settings) -> MCPServer[ToolContext]:
    """The server for these settings; nothing is opened until a transport runs it."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[ToolContext]) -> AsyncIterator[ToolContext]:
        secrets = vault_resolver(settings)
        # Opened now when it can be; a vault that cannot be unlocked fails only the documents
        # and vault tools that need it, each with the reason.
        problem = await asyncio.to_thread(secrets.warm)
        if problem is not None:
            logger.warning("the vault cannot be opened; secrets cannot be used: %s", problem)
        engine = await Engine.open(
            settings.db_path,
            settings.runs_dir,
            resume=True,
            secrets=secrets,
            **settings.engine_options(),
        )
        resumed = [run_id for run_id in engine.runs]
        if resumed:
            logger.info("resumed %d orchestration(s): %s", len(resumed), ", ".join(resumed))
        try:
            yield ToolContext(
                engine=engine,
                home=settings.home,
                max_wait_seconds=settings.max_wait_seconds,
                vault=secrets,
            )
        finally:
            # shielded: a signal cancels the transport, but the shutdown itself must complete
            with anyio.CancelScope(shield=True):
                await engine.aclose()
                try:
                    await asyncio.to_thread(secrets.close)
                except VaultError as exc:
                    logger.warning("could not save the secrets' last-used times: %s", exc)
            logger.info("engine closed")

    mcp: MCPServer[ToolContext] = MCPServer(
        "multi-task-orchestrator",
        title="Multi-Task Orchestrator",
        instructions=INSTRUCTIONS,
        version=_version(),
        lifespan=lifespan,
        middleware=[ArtifactMimeTypes()],
        log_level="WARNING",
    )
    register_all(mcp)
    return mcp


def configure_logging(settings: Settings, level: int = logging.INFO) -> None:
    """Log to stderr (stdout belongs to the protocol) and to ``$ORCHESTRATOR_HOME/server.log``."""
    settings.home.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [
        logging.StreamHandler(),
        logging.FileHandler(settings.log_path),
    ]
    root = logging.getLogger()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
