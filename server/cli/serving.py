"""The commands that serve or check this installation: serve (MCP over stdio or HTTP), worker
(a Dask worker), demo (the offline demo) and doctor. The heavy stacks they need are imported
inside each command, so that the other commands start without loading them."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
from rich.console import Console

from multi_task_orchestrator.engine import Store, StoreError
from multi_task_orchestrator.server.build import check_backend
from multi_task_orchestrator.server.cli.common import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    started,
    with_backend,
)
from multi_task_orchestrator.server.cli.ctrl_c import cancels_runs, run_command
from multi_task_orchestrator.server.cli.relay import serve_stdio
from multi_task_orchestrator.server.settings import SettingsError, load_settings
from multi_task_orchestrator.vault.errors import VaultError

if TYPE_CHECKING:  # the model with the runners' fields is built when first used
    from multi_task_orchestrator.engine import Engine, RunSnapshot
    from multi_task_orchestrator.server.settings import Settings


def cmd_serve(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Serve MCP; stdout carries only protocol messages, logs go to stderr and server.log."""
    from multi_task_orchestrator.server.app import create_server
    from multi_task_orchestrator.server.http_transport import HttpConfigError, serve_http
    from multi_task_orchestrator.server.logs import configure_logging

    settings = with_backend(load_settings(), args)
    configure_logging(settings)
    # A damaged database or an unreachable Dask scheduler is reported here: once the stdio
    # transport reads stdin, an error in the lifespan waits for the client to close stdin,
    # which it may never do.
    asyncio.run(_check_store(settings))
    asyncio.run(check_backend(settings))
    try:
        if args.http:
            started()
            serve_http(settings, args.host, args.port)
        else:
            server = create_server(settings)
            started()
            anyio.run(serve_stdio, server)
    except HttpConfigError as exc:
        raise UsageError(str(exc)) from None
    except BaseExceptionGroup as group:  # errors from the transport's task group
        store_errors = group.subgroup((StoreError, VaultError, SettingsError))
        if store_errors is None:
            raise
        raise _first_leaf(store_errors) from None
    return EXIT_OK


async def _check_store(settings: Settings) -> None:
    """Open and close the state database; raises StoreError when it cannot be used."""
    store = await Store.open(settings.db_path)
    await store.aclose()


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    """The first exception of a (possibly nested) group that is not itself a group."""
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def cmd_worker(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run a Dask worker with the project's plugin until Ctrl-C or the scheduler closes it."""
    settings = load_settings()
    scheduler = args.scheduler or settings.dask_scheduler
    if not scheduler:
        raise UsageError(
            "name the Dask scheduler: --scheduler tcp://HOST:8786 or "
            "ORCHESTRATOR_DASK_SCHEDULER (start one with 'dask scheduler')"
        )
    try:
        from multi_task_orchestrator.engine import serve_worker
    except ImportError as exc:
        raise UsageError(
            f"the worker needs Dask distributed ({exc}); install it with "
            "pip install 'multi-task-orchestrator[dask]'"
        ) from None
    err.print(
        f"worker: connecting to {scheduler}, {args.concurrency} attempt(s) at once", markup=False
    )
    started()
    asyncio.run(
        serve_worker(
            scheduler,
            concurrency=args.concurrency,
            runner_settings=settings.explicit_runner_settings(),
            workspace=settings.workspace,
            name=args.name,
        )
    )
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, out: Console, err: Console) -> int:
    from multi_task_orchestrator.server.demo import run_demo, serve_sites
    from multi_task_orchestrator.server.progress import follow

    settings = load_settings()
    if args.sites:
        return asyncio.run(serve_sites(out))

    async def demo() -> int:
        with cancels_runs() as ctrl_c:

            async def start_and_follow(
                engine: Engine, start: Callable[[], Awaitable[str]]
            ) -> RunSnapshot:
                with ctrl_c.starting():
                    run_id = await start()
                ctrl_c.started([engine.runs.get(run_id)])
                return await follow(engine, run_id, err)

            code = await run_demo(settings, out, start_and_follow)
        return EXIT_CANCELLED if ctrl_c.pressed else code

    return run_command(demo())


def cmd_doctor(args: argparse.Namespace, out: Console, err: Console) -> int:
    from multi_task_orchestrator.server.doctor import diagnose

    checks = asyncio.run(diagnose(load_settings()))
    marks = {"ok": "✓", "warning": "!", "error": "✗"}
    for check in checks:
        out.print(f"{marks[check.verdict]} {check.name:<9} {check.detail}", markup=False)
    return EXIT_FAILED if any(check.verdict == "error" for check in checks) else EXIT_OK
