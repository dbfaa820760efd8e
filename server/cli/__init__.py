"""The ``orchestrator`` command: run, validate, list, status, results, report, resume, schedule,
vault.

Exit codes: 0 when every task succeeded, 1 when any failed, 2 for bad input (an invalid document,
an unknown id, a bad setting), 130 when a run was cancelled with Ctrl-C. Errors are one clear
message on stderr, never a traceback.

This module assembles the parser and runs a command; the commands live by family in
``runs`` (run, retry, resume), ``history`` (list, status, results, report), ``documents``
(validate, schema), ``serving`` (serve, worker, demo, doctor; ``relay`` for stdio), ``schedules``
(schedule add, list, rm, pause, resume), ``vault``, ``approvals`` (approve, reject, approvals)
and ``ui`` (open the live view of a running server).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from multi_task_orchestrator.engine import (
    DocumentError,
    RunStatus,
    StoreError,
    UnknownOrchestration,
)
from multi_task_orchestrator.server.cli.approvals import add_approval_commands
from multi_task_orchestrator.server.cli.common import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_backend,
    add_vars,
    console,
    positive_int,
)
from multi_task_orchestrator.server.cli.documents import cmd_schema, cmd_validate
from multi_task_orchestrator.server.cli.history import cmd_list, cmd_report, cmd_results, cmd_status
from multi_task_orchestrator.server.cli.runs import cmd_resume, cmd_retry, cmd_run
from multi_task_orchestrator.server.cli.schedules import add_schedule_commands
from multi_task_orchestrator.server.cli.serving import (
    DEFAULT_HTTP_PORT,
    cmd_demo,
    cmd_doctor,
    cmd_serve,
    cmd_worker,
)
from multi_task_orchestrator.server.cli.ui import add_ui_command
from multi_task_orchestrator.server.cli.vault import add_vault_commands
from multi_task_orchestrator.server.settings import SettingsError
from multi_task_orchestrator.vault.errors import VaultError

__all__ = [
    "EXIT_CANCELLED",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PRIVATE_UMASK",
    "UsageError",
    "main",
]

PRIVATE_UMASK = 0o077


def main(argv: Sequence[str] | None = None) -> int:
    # Everything this process writes under the home folder (state, vault, runs, logs, the
    # workspace) is for this user alone: files 0600, folders 0700.
    os.umask(PRIVATE_UMASK)
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    out = console()
    err = console(stderr=True)
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
    add_vars(run)
    run.add_argument("--max-concurrent", type=int, metavar="N", help="override max_concurrent")
    run.add_argument("--json", action="store_true", help="print the aggregated results as JSON")
    add_backend(run)
    run.set_defaults(handler=cmd_run)

    check = commands.add_parser("validate", help="check a document; print its errors or plan")
    check.add_argument("file", type=Path)
    add_vars(check)
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=cmd_validate)

    listing = commands.add_parser("list", help="recent orchestrations")
    listing.add_argument("--status", choices=[status.value for status in RunStatus])
    listing.add_argument("--limit", type=positive_int, default=20, metavar="N")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)

    status = commands.add_parser("status", help="progress and per-task state of one orchestration")
    status.add_argument("id", help="an orchestration id (or a unique prefix)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

    results = commands.add_parser("results", help="outputs, summary and failures of one run")
    results.add_argument("id")
    results.add_argument("--task", action="append", dest="tasks", metavar="TASK_ID")
    results.add_argument("--json", action="store_true")
    results.set_defaults(handler=cmd_results)

    report = commands.add_parser(
        "report", help="write a run's report.html (timeline, tasks, failures) and print its path"
    )
    report.add_argument("id", help="an orchestration id (or a unique prefix)")
    report.add_argument("--open", action="store_true", help="open it in the web browser")
    report.set_defaults(handler=cmd_report)

    retry = commands.add_parser(
        "retry", help="run a finished run's failed, skipped and cancelled tasks again"
    )
    retry.add_argument("id")
    add_backend(retry)
    retry.set_defaults(handler=cmd_retry)

    resume = commands.add_parser("resume", help="finish runs a stopped process left unfinished")
    resume.add_argument("id", nargs="?")
    add_backend(resume)
    resume.set_defaults(handler=cmd_resume)

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
    add_backend(serve)
    serve.set_defaults(handler=cmd_serve)
    add_ui_command(commands)

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
        type=positive_int,
        default=8,
        metavar="N",
        help="attempts running at once on this worker (default 8)",
    )
    worker.add_argument("--name", help="the worker's name in the cluster")
    worker.set_defaults(handler=cmd_worker)

    demo = commands.add_parser(
        "demo", help="run the seed's patterns 1, 2 and 3 against built-in local servers (offline)"
    )
    demo.add_argument(
        "--sites", action="store_true", help="only serve the demo sites and inbox, until Ctrl-C"
    )
    demo.set_defaults(handler=cmd_demo)

    doctor = commands.add_parser("doctor", help="check the installation: browser, vault, database")
    doctor.set_defaults(handler=cmd_doctor)

    schema = commands.add_parser("schema", help="print the document's JSON Schema")
    schema.set_defaults(handler=cmd_schema)
    add_schedule_commands(commands)
    add_vault_commands(commands)
    add_approval_commands(commands)
    return parser
