"""The ``orchestrator`` command: run, validate, list, status, results, report, resume, vault.

Exit codes: 0 when every task succeeded, 1 when any failed, 2 for bad input (an invalid document,
an unknown id, a bad setting), 130 when a run was cancelled with Ctrl-C. Errors are one clear
message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import signal
import sys
import time
import webbrowser
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
import yaml
from rich.console import Console

from multi_task_orchestrator.engine.document_schema import document_json_schema
from multi_task_orchestrator.engine.engine import Engine, NotAllowedNow, UnknownOrchestration
from multi_task_orchestrator.engine.graph import Validation
from multi_task_orchestrator.engine.issues import DocumentError
from multi_task_orchestrator.engine.reports.display import render_status
from multi_task_orchestrator.engine.reports.files import REPORT_FILE, run_files
from multi_task_orchestrator.engine.reports.html import write_report
from multi_task_orchestrator.engine.reports.results import aggregated_results
from multi_task_orchestrator.engine.reports.summary import render_summary
from multi_task_orchestrator.engine.spec import load_file
from multi_task_orchestrator.engine.state import RunStatus
from multi_task_orchestrator.engine.store import Store, StoreError
from multi_task_orchestrator.server.build import build_engine, check_backend
from multi_task_orchestrator.server.progress import follow
from multi_task_orchestrator.server.settings import (
    Settings,
    SettingsError,
    load_settings,
    open_vault,
)
from multi_task_orchestrator.vault.envfile import read_env_file
from multi_task_orchestrator.vault.errors import VaultError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130
PRIVATE_UMASK = 0o077
# `serve --http`; not 8765, where `python -m tests.local_server` and the examples' URLs are.
DEFAULT_HTTP_PORT = 7450


class UsageError(Exception):
    """Bad input from the user: printed as one message, exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    # Everything this process writes under the home folder (state, vault, runs, logs, the
    # workspace) is for this user alone: files 0600, folders 0700.
    os.umask(PRIVATE_UMASK)
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    out = Console(soft_wrap=True, highlight=False)
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    try:
        return args.handler(args, out, err)
    except BrokenPipeError:
        # The reader went away (`orchestrator schema | head`): stop quietly, as rich does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except (UsageError, SettingsError, StoreError, UnknownOrchestration, VaultError) as exc:
        err.print(f"error: {exc}", markup=False)
        return EXIT_USAGE
    except DocumentError as exc:
        err.print(f"error: {exc}", markup=False)
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        return EXIT_CANCELLED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Run DAGs of tasks in parallel, durably. Documents are YAML or JSON.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run a document in the foreground with live progress")
    run.add_argument("file", type=Path)
    _add_vars(run)
    run.add_argument("--max-concurrent", type=int, metavar="N", help="override max_concurrent")
    run.add_argument("--json", action="store_true", help="print the aggregated results as JSON")
    _add_backend(run)
    run.set_defaults(handler=_cmd_run)

    check = commands.add_parser("validate", help="check a document; print its errors or plan")
    check.add_argument("file", type=Path)
    _add_vars(check)
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=_cmd_validate)

    listing = commands.add_parser("list", help="recent orchestrations")
    listing.add_argument("--status", choices=[status.value for status in RunStatus])
    listing.add_argument("--limit", type=_positive_int, default=20, metavar="N")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_cmd_list)

    status = commands.add_parser("status", help="progress and per-task state of one orchestration")
    status.add_argument("id", help="an orchestration id (or a unique prefix)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_cmd_status)

    results = commands.add_parser("results", help="outputs, summary and failures of one run")
    results.add_argument("id")
    results.add_argument("--task", action="append", dest="tasks", metavar="TASK_ID")
    results.add_argument("--json", action="store_true")
    results.set_defaults(handler=_cmd_results)

    report = commands.add_parser(
        "report", help="write a run's report.html (timeline, tasks, failures) and print its path"
    )
    report.add_argument("id", help="an orchestration id (or a unique prefix)")
    report.add_argument("--open", action="store_true", help="open it in the web browser")
    report.set_defaults(handler=_cmd_report)

    retry = commands.add_parser(
        "retry", help="run a finished run's failed, skipped and cancelled tasks again"
    )
    retry.add_argument("id")
    _add_backend(retry)
    retry.set_defaults(handler=_cmd_retry)

    resume = commands.add_parser("resume", help="finish runs a stopped process left unfinished")
    resume.add_argument("id", nargs="?")
    _add_backend(resume)
    resume.set_defaults(handler=_cmd_resume)

    serve = commands.add_parser(
        "serve", help="run the MCP server (stdio by default; --http for streamable HTTP)"
    )
    serve.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    serve.add_argument(
        "--port",
        type=int,
        default=DEFAULT_HTTP_PORT,
        help=f"HTTP port (default {DEFAULT_HTTP_PORT})",
    )
    _add_backend(serve)
    serve.set_defaults(handler=_cmd_serve)

    worker = commands.add_parser(
        "worker", help="run a Dask worker that runs task attempts for 'serve --backend dask'"
    )
    worker.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="the Dask scheduler, e.g. tcp://host:8786 (default: ORCHESTRATOR_DASK_SCHEDULER)",
    )
    worker.add_argument(
        "--concurrency",
        "--nthreads",
        dest="concurrency",
        type=_positive_int,
        default=8,
        metavar="N",
        help="attempts running at once on this worker (default 8)",
    )
    worker.add_argument("--name", help="the worker's name in the cluster")
    worker.set_defaults(handler=_cmd_worker)

    demo = commands.add_parser(
        "demo", help="run the seed's patterns 1 and 2 against built-in local sites (offline)"
    )
    demo.add_argument(
        "--sites", action="store_true", help="only serve the demo sites, until Ctrl-C"
    )
    demo.set_defaults(handler=_cmd_demo)

    doctor = commands.add_parser("doctor", help="check the installation: browser, vault, database")
    doctor.set_defaults(handler=_cmd_doctor)

    schema = commands.add_parser("schema", help="print the document's JSON Schema")
    schema.set_defaults(handler=_cmd_schema)
    _add_vault_commands(commands)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=["local", "dask"],
        help="where task attempts run (default: ORCHESTRATOR_BACKEND, else local)",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="the Dask scheduler for --backend dask, e.g. tcp://host:8786 "
        "(default: ORCHESTRATOR_DASK_SCHEDULER)",
    )


def _with_backend(settings: Settings, args: argparse.Namespace) -> Settings:
    """The settings with --backend and --scheduler applied."""
    update: dict[str, Any] = {}
    if args.backend is not None:
        update["backend"] = args.backend
    if args.scheduler is not None:
        update["dask_scheduler"] = args.scheduler
        update.setdefault("backend", "dask")
    return settings.model_copy(update=update) if update else settings


def _add_vars(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set or override a document var (VALUE is read as YAML: 3, true, [a, b])",
    )


def _parse_vars(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--var takes NAME=VALUE, got '{pair}'")
        try:
            values[name.strip()] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            values[name.strip()] = text
    return values


@asynccontextmanager
async def _engine(
    settings: Settings, *, runs_tasks: bool = False, with_vault: bool = False
) -> AsyncIterator[Engine]:
    """An engine for one command; ``with_vault`` gives it the vault, opened when a secret is
    first needed (a document that names none runs even if the vault cannot be unlocked). Only
    a command that ``runs_tasks`` uses the configured backend (and so needs its scheduler)."""
    if not runs_tasks:
        settings = settings.model_copy(update={"backend": "local"})
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    async with build_engine(
        settings,
        vault="lazy" if with_vault else "none",
        notify=lambda text: err.print(text, markup=False),
    ) as built:
        yield built.engine


# --- run ----------------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = _with_backend(load_settings(), args)
    return asyncio.run(_run(args, settings, out, err))


async def _run(args: argparse.Namespace, settings: Settings, out: Console, err: Console) -> int:
    raw = load_file(args.file, max_bytes=settings.max_document_bytes)
    extra_vars = _parse_vars(args.var)
    async with _engine(settings, runs_tasks=True, with_vault=True) as engine:
        validation = engine.validate(raw, extra_vars=extra_vars, require_runners=True)
        orchestration = validation.raise_for_errors()
        await engine.machine_warnings(validation)
        for issue in validation.warnings:
            err.print(f"{args.file}: {issue}", markup=False)
        if args.max_concurrent is not None:
            if args.max_concurrent < 1:
                raise UsageError("--max-concurrent must be at least 1")
            orchestration = orchestration.model_copy(update={"max_concurrent": args.max_concurrent})
        cancelled = False
        run_id: str | None = None

        def on_interrupt() -> None:
            nonlocal cancelled
            cancelled = True
            if run_id in engine.runs:
                engine.runs[run_id].cancel("cancelled with Ctrl-C")

        loop = asyncio.get_running_loop()
        with suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, on_interrupt)
        try:
            run_id, _ = await engine.start(orchestration, source_name=str(args.file))
            if cancelled and run_id in engine.runs:  # Ctrl-C while the run was being saved
                engine.runs[run_id].cancel("cancelled with Ctrl-C")
            snapshot = await follow(engine, run_id, err, show=not args.json)
        finally:
            with suppress(NotImplementedError):
                loop.remove_signal_handler(signal.SIGINT)
        full = await engine.snapshot(run_id, include_outputs=True)
        files = run_files(snapshot.run_dir)
    if args.json:
        out.print_json(json.dumps(aggregated_results(full), default=str))
    else:
        out.print(render_summary(full, files), markup=False)
        report_path = Path(snapshot.run_dir or "") / REPORT_FILE
        if snapshot.run_dir and report_path.exists():
            out.print(f"Report: {report_path}", markup=False)
    if cancelled or snapshot.status == RunStatus.cancelled:
        return EXIT_CANCELLED
    return EXIT_OK if snapshot.status == RunStatus.succeeded else EXIT_FAILED


# --- validate -----------------------------------------------------------------------------


def _cmd_validate(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = load_settings()
    return asyncio.run(_validate(args, settings, out, err))


async def _validate(
    args: argparse.Namespace, settings: Settings, out: Console, err: Console
) -> int:
    extra_vars = _parse_vars(args.var)
    try:
        raw = load_file(args.file, max_bytes=settings.max_document_bytes)
    except DocumentError as exc:
        # An unreadable file or malformed YAML is reported like every other problem (and as
        # JSON with --json), not as a bare error message.
        result = Validation(orchestration=None, issues=list(exc.issues))
    else:
        async with _engine(settings, with_vault=True) as engine:
            result = engine.validate(raw, extra_vars=extra_vars)
            await engine.machine_warnings(result)
    if args.json:
        out.print_json(
            json.dumps(
                {
                    "ok": result.ok,
                    "issues": [_issue_dict(issue) for issue in result.issues],
                    "plan": result.plan.to_dict() if result.plan else None,
                }
            )
        )
        return EXIT_OK if result.ok else EXIT_USAGE
    for issue in result.issues:
        target = err if issue.severity == "error" else out
        target.print(f"{args.file}: {issue}", markup=False)
    if not result.ok:
        err.print(f"{len(result.errors)} error(s); the document was not run", markup=False)
        return EXIT_USAGE
    assert result.plan is not None
    out.print(f"{args.file} is valid.", markup=False)
    out.print(result.plan.describe(), markup=False)
    return EXIT_OK


def _issue_dict(issue: Any) -> dict[str, Any]:
    return {
        "severity": issue.severity,
        "path": issue.path,
        "line": issue.line,
        "column": issue.column,
        "message": issue.message,
        "hint": issue.hint,
    }


# --- list, status, results ----------------------------------------------------------------


def _cmd_list(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = load_settings()

    async def work() -> int:
        async with _engine(settings) as engine:
            rows = await engine.list(args.status, args.limit)
        if args.json:
            out.print_json(
                json.dumps(
                    [
                        {
                            "id": row.id,
                            "name": row.name,
                            "status": row.status,
                            "created_at": row.created_at,
                            "finished_at": row.finished_at,
                        }
                        for row in rows
                    ]
                )
            )
            return EXIT_OK
        if not rows:
            out.print("no orchestrations yet; start one with 'orchestrator run FILE'", markup=False)
        for row in rows:
            created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.created_at))
            out.print(f"{row.id}  {row.status:<10} {created}  {row.name}", markup=False)
        return EXIT_OK

    return asyncio.run(work())


STATUS_ROWS = 50  # task rows in the status display, as in render_status


def _cmd_status(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = load_settings()

    async def work() -> int:
        async with _engine(settings) as engine:
            if args.json:  # every task, so not the status read, which has only those shown
                snapshot = await engine.snapshot(args.id)
            else:
                snapshot = await engine.status(args.id, display_rows=STATUS_ROWS)
        if args.json:
            exclude = {"task_counts": True, "tasks": {"__all__": {"output"}}}
            out.print_json(snapshot.model_dump_json(exclude=exclude))
        else:
            out.print(f"{snapshot.id}  {snapshot.name}  [{snapshot.status.value}]", markup=False)
            out.print(render_status(snapshot, now=time.time(), max_rows=STATUS_ROWS), markup=False)
        return EXIT_OK

    return asyncio.run(work())


def _cmd_report(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = load_settings()

    async def work() -> Path:
        async with _engine(settings) as engine:
            return await write_report(engine.store, await engine.snapshot(args.id))

    path = asyncio.run(work())
    out.print(str(path), markup=False)
    if args.open and not webbrowser.open(path.as_uri()):
        err.print(f"could not open a web browser; open {path} yourself", markup=False)
    return EXIT_OK


def _cmd_results(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = load_settings()

    async def work() -> int:
        async with _engine(settings) as engine:
            snapshot = await engine.snapshot(args.id, include_outputs=True)
        results = aggregated_results(snapshot)
        if args.tasks:
            unknown = [task for task in args.tasks if task not in results["tasks"]]
            if unknown:
                known = ", ".join(list(results["tasks"])[:20])
                raise UsageError(f"no task {', '.join(unknown)} in {snapshot.id}; tasks: {known}")
            results["tasks"] = {key: results["tasks"][key] for key in args.tasks}
        if args.json:
            out.print_json(json.dumps(results, default=str))
            return EXIT_OK
        out.print(render_summary(snapshot, run_files(snapshot.run_dir)), markup=False)
        out.print("", markup=False)
        for task_id, task in results["tasks"].items():
            out.print(f"{task_id} [{task['state']}]", markup=False)
            if task.get("output") is not None:
                out.print(json.dumps(task["output"], indent=2, default=str), markup=False)
        return EXIT_OK

    return asyncio.run(work())


# --- resume, schema -----------------------------------------------------------------------


def _cmd_resume(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = _with_backend(load_settings(), args)

    async def work() -> int:
        async with _engine(settings, runs_tasks=True, with_vault=True) as engine:
            run_id = await engine.resolve_id(args.id) if args.id else None
            resumed = await engine.resume(run_id)
            held = await engine.held_elsewhere(run_id)
            if run_id is not None and not resumed:
                if held:  # a live process runs it: taking it would run its tasks twice
                    raise UsageError(held[0].explain())
                status = await engine.run_status(run_id)
                retryable = status in (RunStatus.failed, RunStatus.cancelled)
                hint = "; `orchestrator retry` runs its failed tasks again" if retryable else ""
                state = f"already finished: {status.value}" if status.terminal else status.value
                out.print(f"nothing to resume: {run_id} is {state}{hint}", markup=False)
                return EXIT_OK
            for run in held:
                out.print(f"not resumed: {run.explain()}", markup=False)
            if not resumed:
                if not held:
                    out.print("nothing to resume: no unfinished orchestrations", markup=False)
                return EXIT_OK
            worst = EXIT_OK
            for run_id in resumed:
                snapshot = await follow(engine, run_id, err)
                full = await engine.snapshot(run_id, include_outputs=True)
                out.print(render_summary(full, run_files(snapshot.run_dir)), markup=False)
                if snapshot.status != RunStatus.succeeded:
                    worst = EXIT_FAILED
            return worst

    return asyncio.run(work())


def _cmd_serve(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Serve MCP; stdout carries only protocol messages, logs go to stderr and server.log."""
    # Imported here so that the other commands start without loading the MCP stack.
    from multi_task_orchestrator.server.app import create_server
    from multi_task_orchestrator.server.http_transport import HttpConfigError, serve_http
    from multi_task_orchestrator.server.logs import configure_logging

    settings = _with_backend(load_settings(), args)
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, got {args.port}")
    configure_logging(settings)
    # A damaged database or an unreachable Dask scheduler is reported here: once the stdio
    # transport reads stdin, an error in the lifespan waits for the client to close stdin,
    # which it may never do.
    asyncio.run(_check_store(settings))
    asyncio.run(check_backend(settings))
    try:
        if args.http:
            serve_http(settings, args.host, args.port)
        else:
            anyio.run(_serve_stdio, create_server(settings))
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


def _cmd_worker(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run a Dask worker with the project's plugin until Ctrl-C or the scheduler closes it."""
    settings = load_settings()
    scheduler = args.scheduler or settings.dask_scheduler
    if not scheduler:
        raise UsageError(
            "name the Dask scheduler: --scheduler tcp://HOST:8786 or "
            "ORCHESTRATOR_DASK_SCHEDULER (start one with 'dask scheduler')"
        )
    try:
        from multi_task_orchestrator.engine.backends.dask_worker import serve_worker
    except ImportError as exc:
        raise UsageError(
            f"the worker needs Dask distributed ({exc}); install it with "
            "pip install 'multi-task-orchestrator[dask]'"
        ) from None
    err.print(
        f"worker: connecting to {scheduler}, {args.concurrency} attempt(s) at once", markup=False
    )
    asyncio.run(
        serve_worker(
            scheduler,
            concurrency=args.concurrency,
            browser=settings.browser(),
            workspace=settings.workspace,
            name=args.name,
        )
    )
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace, out: Console, err: Console) -> int:
    # Imported here so that the other commands start without loading the demo's web server.
    from multi_task_orchestrator.server.demo import run_demo, serve_sites

    settings = load_settings()
    if args.sites:
        return asyncio.run(serve_sites(out))
    return asyncio.run(run_demo(settings, out, lambda engine, run_id: follow(engine, run_id, err)))


def _cmd_doctor(args: argparse.Namespace, out: Console, err: Console) -> int:
    from multi_task_orchestrator.server.doctor import diagnose

    checks = asyncio.run(diagnose(load_settings()))
    marks = {"ok": "✓", "warning": "!", "error": "✗"}
    for check in checks:
        out.print(f"{marks[check.verdict]} {check.name:<9} {check.detail}", markup=False)
    return EXIT_FAILED if any(check.verdict == "error" for check in checks) else EXIT_OK


async def _serve_stdio(mcp: Any) -> None:
    """Serve stdio until the client closes it, or until SIGTERM/SIGINT: then the engine gives
    running tasks their grace period and releases the rest for the next start."""
    relay = await _relay_stdin()
    async with anyio.create_task_group() as group:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    group.cancel_scope.cancel()
                    if relay is not None:
                        relay.close()  # the transport's stdin ends, so the server can exit
                    return

        group.start_soon(stop_on_signal)
        await mcp.run_stdio_async()
        group.cancel_scope.cancel()


class _Relay(asyncio.Protocol):
    """Copies what arrives on stdin into the pipe the MCP transport reads."""

    def __init__(self, sink: asyncio.WriteTransport) -> None:
        self.sink = sink

    def data_received(self, data: bytes) -> None:
        self.sink.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.sink.close()


async def _relay_stdin() -> asyncio.WriteTransport | None:
    """Put a pipe this process controls on fd 0 and copy stdin into it; closing the returned
    end gives the MCP transport an end of input. The SDK reads stdin in a thread that only
    the end of input stops, so without this a signal could not end a server whose client
    keeps stdin open. None (nothing changed) when stdin is not a pipe, socket or terminal."""
    loop = asyncio.get_running_loop()
    read_end, write_end = os.pipe()
    sink, _ = await loop.connect_write_pipe(
        asyncio.Protocol, os.fdopen(write_end, "wb", buffering=0)
    )
    source = os.fdopen(os.dup(0), "rb", buffering=0)
    try:
        await loop.connect_read_pipe(lambda: _Relay(sink), source)
    except ValueError:  # stdin is a regular file: the transport reads it directly
        source.close()
        sink.close()
        os.close(read_end)
        return None
    os.dup2(read_end, 0)
    os.close(read_end)
    return sink


def _cmd_retry(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = _with_backend(load_settings(), args)

    async def work() -> int:
        async with _engine(settings, runs_tasks=True, with_vault=True) as engine:
            try:
                run_id = await engine.retry(args.id)
            except NotAllowedNow as exc:
                raise UsageError(str(exc)) from None
            snapshot = await follow(engine, run_id, err)
            full = await engine.snapshot(run_id, include_outputs=True)
        out.print(render_summary(full, run_files(snapshot.run_dir)), markup=False)
        return EXIT_OK if snapshot.status == RunStatus.succeeded else EXIT_FAILED

    return asyncio.run(work())


def _cmd_schema(args: argparse.Namespace, out: Console, err: Console) -> int:
    from multi_task_orchestrator.engine.runners import discover

    configs = {name: runner.config_model for name, runner in discover().items()}
    sys.stdout.write(json.dumps(document_json_schema(configs), indent=2) + "\n")
    sys.stdout.flush()  # a closed pipe fails here, inside main, not at interpreter exit
    return EXIT_OK


# --- vault --------------------------------------------------------------------------------

HOSTS_EXAMPLE = "e.g. --hosts api.example.com,*.example.com (or --hosts '*' for any host)"


def _add_vault_commands(commands: Any) -> None:
    vault = commands.add_parser(
        "vault",
        help="the encrypted credential vault: set, list, rm, rotate, import",
        description="Secrets for ${vault.NAME} references. Values are read from a hidden prompt "
        "or stdin, never from the command line, and are never printed.",
    )
    actions = vault.add_subparsers(dest="vault_command", metavar="COMMAND", required=True)

    store = actions.add_parser(
        "set",
        help="store a secret; the value is read from a hidden prompt or stdin",
        description="Store or replace secret NAME. The value is read from a hidden prompt on a "
        "terminal, or from stdin (one trailing newline is dropped); it is never taken from "
        "the command line, where other users and shell history could see it.",
    )
    store.add_argument("name", help="the secret's name, used as ${vault.NAME}")
    store.add_argument("--hosts", help=f"the hosts it may be sent to (required), {HOSTS_EXAMPLE}")
    store.add_argument("--description", help="what the secret is for")
    store.set_defaults(handler=_cmd_vault_set)

    listing = actions.add_parser("list", help="names, descriptions, hosts and times; no values")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_cmd_vault_list)

    remove = actions.add_parser("rm", help="delete a secret")
    remove.add_argument("name")
    remove.set_defaults(handler=_cmd_vault_rm)

    rotate = actions.add_parser(
        "rotate",
        help="re-encrypt every secret under a new key",
        description="Re-encrypt the vault under a new key: a new key file key, or the same "
        "passphrase with a new salt. --new-passphrase switches to a passphrase, --new-key to a "
        "given Fernet key; either is read from a hidden prompt (or stdin).",
    )
    new_secret = rotate.add_mutually_exclusive_group()
    new_secret.add_argument(
        "--new-passphrase", action="store_true", help="protect it with a passphrase"
    )
    new_secret.add_argument("--new-key", action="store_true", help="protect it with a Fernet key")
    rotate.set_defaults(handler=_cmd_vault_rotate)

    load = actions.add_parser("import", help="store every NAME=VALUE of a .env file")
    load.add_argument("file", type=Path)
    load.add_argument(
        "--hosts", help=f"the hosts every imported secret may be sent to, {HOSTS_EXAMPLE}"
    )
    load.add_argument("--description", help="a description for every imported secret")
    load.set_defaults(handler=_cmd_vault_import)


def _hosts(args: argparse.Namespace) -> list[str]:
    if not args.hosts or not args.hosts.strip():
        raise UsageError(
            "--hosts is required: name the hosts the secret may be sent to, " + HOSTS_EXAMPLE
        )
    return [host.strip() for host in args.hosts.split(",") if host.strip()]


def _read_hidden(prompt: str, *, confirm: bool = False) -> str:
    """A value from a hidden prompt on a terminal, else all of stdin minus one final newline."""
    if sys.stdin.isatty():
        value = getpass.getpass(prompt)
        if confirm and getpass.getpass("again, to confirm: ") != value:
            raise UsageError("the two entries differ; nothing was changed")
        return value
    text = sys.stdin.read()
    return text.removesuffix("\n").removesuffix("\r")


def _cmd_vault_set(args: argparse.Namespace, out: Console, err: Console) -> int:
    hosts = _hosts(args)
    vault = open_vault(load_settings())
    value = _read_hidden(f"value for {args.name} (hidden): ")
    info = vault.set(args.name, value, allowed_hosts=hosts, description=args.description)
    out.print(f"stored {info.name} (allowed hosts: {', '.join(info.allowed_hosts)})", markup=False)
    return EXIT_OK


def _cmd_vault_list(args: argparse.Namespace, out: Console, err: Console) -> int:
    vault = open_vault(load_settings())
    secrets = vault.list()
    if args.json:
        out.print_json(json.dumps([info.model_dump() for info in secrets]))
        return EXIT_OK
    if not secrets:
        out.print(
            "no secrets yet; store one with 'orchestrator vault set NAME --hosts HOST'",
            markup=False,
        )
    for info in secrets:
        hosts = ", ".join(info.allowed_hosts)
        used = f"last used {info.last_used_at}" if info.last_used_at else "never used"
        out.print(f"{info.name}  hosts: {hosts}  updated {info.updated_at}  {used}", markup=False)
        if info.description:
            out.print(f"    {info.description}", markup=False)
    return EXIT_OK


def _cmd_vault_rm(args: argparse.Namespace, out: Console, err: Console) -> int:
    open_vault(load_settings()).delete(args.name)
    out.print(f"deleted {args.name}", markup=False)
    return EXIT_OK


def _cmd_vault_rotate(args: argparse.Namespace, out: Console, err: Console) -> int:
    vault = open_vault(load_settings())
    if args.new_passphrase:
        vault.rotate(new_passphrase=_read_hidden("new passphrase (hidden): ", confirm=True))
        out.print(
            f"re-encrypted {len(vault.names())} secret(s) under the new passphrase; from now on "
            "set ORCHESTRATOR_VAULT_PASSPHRASE to it",
            markup=False,
        )
    elif args.new_key:
        vault.rotate(new_key=_read_hidden("new Fernet key (hidden): "))
        out.print(
            f"re-encrypted {len(vault.names())} secret(s) under the new key; from now on set "
            "ORCHESTRATOR_VAULT_KEY to it",
            markup=False,
        )
    else:
        vault.rotate()
        out.print(
            f"re-encrypted {len(vault.names())} secret(s) under a new key ({vault.key_source})",
            markup=False,
        )
    return EXIT_OK


def _cmd_vault_import(args: argparse.Namespace, out: Console, err: Console) -> int:
    hosts = _hosts(args)
    values = read_env_file(args.file)
    vault = open_vault(load_settings())
    stored = vault.set_many(values, allowed_hosts=hosts, description=args.description)
    names = ", ".join(info.name for info in stored)
    out.print(f"imported {len(stored)} secret(s) for {', '.join(hosts)}: {names}", markup=False)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
