"""The ``orchestrator`` command line's parser: every command, option and help text, and nothing
a command needs to run. A command's handler is named ``"module:function"`` (a module of this
package), imported only when that command runs, so ``--help`` and a mistyped option answer at
once."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# `serve --http`; not 8765, where `python -m tests.local_server` and the examples' URLs are.
DEFAULT_HTTP_PORT = 7450
# engine.RunStatus's values (tests/test_startup.py checks they stay the same)
RUN_STATUSES = ["pending", "running", "succeeded", "failed", "cancelled"]
MAX_CONCURRENT = 10_000  # a document's max_concurrent's bound (engine/document/models.py)
JSON_HELP = "print the answer as JSON"
HOSTS_EXAMPLE = "e.g. --hosts api.example.com,*.example.com (or --hosts '*' for any host)"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def concurrency(text: str) -> int:
    """A document's max_concurrent: 1 to 10,000."""
    value = positive_int(text)
    if value > MAX_CONCURRENT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_CONCURRENT:,}, got {value:,}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Run DAGs of tasks in parallel, durably. Documents are YAML or JSON.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run a document in the foreground with live progress")
    run.add_argument("file", type=Path)
    add_vars(run)
    run.add_argument(
        "--max-concurrent",
        type=concurrency,
        metavar="N",
        help="override max_concurrent (1 to 10000)",
    )
    run.add_argument("--json", action="store_true", help="print the aggregated results as JSON")
    add_backend(run)
    run.set_defaults(handler="runs:cmd_run")

    check = commands.add_parser("validate", help="check a document; print its errors or plan")
    check.add_argument("file", type=Path)
    add_vars(check)
    check.add_argument("--json", action="store_true", help=JSON_HELP)
    check.set_defaults(handler="documents:cmd_validate")

    listing = commands.add_parser("list", help="recent orchestrations")
    listing.add_argument("--status", choices=RUN_STATUSES)
    listing.add_argument("--limit", type=positive_int, default=20, metavar="N")
    listing.add_argument("--json", action="store_true", help=JSON_HELP)
    listing.set_defaults(handler="history:cmd_list")

    status = commands.add_parser("status", help="progress and per-task state of one orchestration")
    status.add_argument("id", help="an orchestration id (or a unique prefix)")
    status.add_argument("--json", action="store_true", help=JSON_HELP)
    status.set_defaults(handler="history:cmd_status")

    results = commands.add_parser("results", help="outputs, summary and failures of one run")
    results.add_argument("id")
    results.add_argument("--task", action="append", dest="tasks", metavar="TASK_ID")
    results.add_argument("--json", action="store_true", help=JSON_HELP)
    results.set_defaults(handler="history:cmd_results")

    report = commands.add_parser(
        "report", help="write a run's report.html (timeline, tasks, failures) and print its path"
    )
    report.add_argument("id", help="an orchestration id (or a unique prefix)")
    report.add_argument("--open", action="store_true", help="open it in the web browser")
    report.set_defaults(handler="history:cmd_report")

    retry = commands.add_parser(
        "retry", help="run a finished run's failed, skipped and cancelled tasks again"
    )
    retry.add_argument("id")
    add_backend(retry)
    retry.set_defaults(handler="runs:cmd_retry")

    resume = commands.add_parser("resume", help="finish runs a stopped process left unfinished")
    resume.add_argument("id", nargs="?")
    add_backend(resume)
    resume.set_defaults(handler="runs:cmd_resume")

    serve = commands.add_parser(
        "serve", help="run the MCP server (stdio by default; --http for streamable HTTP)"
    )
    serve.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    _add_address(serve, "HTTP")
    add_backend(serve)
    serve.set_defaults(handler="serving:cmd_serve")

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
    worker.set_defaults(handler="serving:cmd_worker")

    demo = commands.add_parser(
        "demo", help="run the seed's patterns 1, 2 and 3 against built-in local servers (offline)"
    )
    demo.add_argument(
        "--sites", action="store_true", help="only serve the demo sites and inbox, until Ctrl-C"
    )
    demo.set_defaults(handler="serving:cmd_demo")

    doctor = commands.add_parser("doctor", help="check the installation: browser, vault, database")
    doctor.set_defaults(handler="serving:cmd_doctor")

    schema = commands.add_parser("schema", help="print the document's JSON Schema")
    schema.set_defaults(handler="documents:cmd_schema")
    _add_schedule_commands(commands)
    _add_vault_commands(commands)
    _add_approval_commands(commands)
    _add_ui_command(commands)
    _own_usage(parser)
    return parser


def _own_usage(parser: argparse.ArgumentParser) -> None:
    """Give every command's namespace its own parser (``usage_parser``), so an unknown option
    is refused with that command's usage, which lists its options (argparse leaves unknown
    options to the top parser, whose usage lists only the commands)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                command.set_defaults(usage_parser=command)
                _own_usage(command)


def _add_schedule_commands(commands: Any) -> None:
    schedule = commands.add_parser(
        "schedule",
        help="run a document again and again: add, list, rm, pause, resume",
        description="Schedules run a document by cron expression or interval, in a time zone. "
        "They are stored in the state database; schedules fire while 'orchestrator serve' runs "
        "(stdio or --http).",
    )
    actions = schedule.add_subparsers(dest="schedule_command", metavar="COMMAND", required=True)

    add = actions.add_parser("add", help="schedule a document (checked now, every problem listed)")
    add.add_argument("file", type=Path)
    timing = add.add_mutually_exclusive_group()
    timing.add_argument(
        "--cron", metavar="EXPR", help="five fields, e.g. '0 9 * * 1-5'; or @hourly, @daily"
    )
    timing.add_argument("--every", metavar="DURATION", help="an interval: 30s, 15m, 1h (>= 1s)")
    add.add_argument("--tz", default="UTC", metavar="ZONE", help="IANA time zone (default UTC)")
    add.add_argument(
        "--overlap",
        choices=["skip", "queue", "allow"],
        default="skip",
        help="a fire while the last run is unfinished: skip it (default), queue one, allow both",
    )
    add.add_argument(
        "--catch-up",
        choices=["skip", "run_once"],
        default="skip",
        help="fires missed while no server ran: skip them (default) or run once at start",
    )
    add_vars(add)
    add.add_argument("--name", help="the schedule's name (default: the document's)")
    add.add_argument("--json", action="store_true", help=JSON_HELP)
    add.set_defaults(handler="schedules:cmd_add")

    listing = actions.add_parser("list", help="schedules with their next fires and last run")
    listing.add_argument("--json", action="store_true", help=JSON_HELP)
    listing.set_defaults(handler="schedules:cmd_list")

    for name, help_text in (
        ("rm", "delete a schedule (its runs stay)"),
        ("pause", "stop a schedule firing until resume"),
        ("resume", "let a paused schedule fire again, from its next time after now"),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("id", help="a schedule id (or a unique prefix)")
        action.add_argument("--json", action="store_true", help=JSON_HELP)
        action.set_defaults(handler="schedules:cmd_change", change=name)


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
    store.add_argument("--description", help="what the secret is for (at most 1,000 characters)")
    store.set_defaults(handler="vault:cmd_set")

    listing = actions.add_parser("list", help="names, descriptions, hosts and times; no values")
    listing.add_argument("--json", action="store_true", help=JSON_HELP)
    listing.set_defaults(handler="vault:cmd_list")

    remove = actions.add_parser("rm", help="delete a secret")
    remove.add_argument("name")
    remove.set_defaults(handler="vault:cmd_rm")

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
    rotate.set_defaults(handler="vault:cmd_rotate")

    load = actions.add_parser("import", help="store every NAME=VALUE of a .env file")
    load.add_argument("file", type=Path)
    load.add_argument(
        "--hosts", help=f"the hosts every imported secret may be sent to, {HOSTS_EXAMPLE}"
    )
    load.add_argument("--description", help="a description for every imported secret")
    load.set_defaults(handler="vault:cmd_import")


def _add_approval_commands(commands: Any) -> None:
    """``approve``, ``reject`` and ``approvals`` on the ``orchestrator`` parser."""
    for name, verb in (("approve", "approve"), ("reject", "reject")):
        parser = commands.add_parser(name, help=f"{verb} an approval task that waits for a person")
        parser.add_argument("id", help="an orchestration id (or a unique prefix)")
        parser.add_argument("task", help="the approval task's id")
        parser.add_argument("--note", help="why: kept with the decision and shown in the report")
        parser.set_defaults(handler="approvals:cmd_decide", decision=name)
    listing = commands.add_parser("approvals", help="approval tasks waiting for a person")
    listing.add_argument("id", nargs="?", help="only this orchestration's")
    listing.add_argument("--json", action="store_true", help=JSON_HELP)
    listing.set_defaults(handler="approvals:cmd_approvals")


def add_backend(parser: argparse.ArgumentParser) -> None:
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


def add_vars(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set or override a document var (VALUE is read as YAML: 3, true, [a, b])",
    )


def _add_ui_command(commands: Any) -> None:
    ui = commands.add_parser(
        "ui", help="open the live view of a running 'orchestrator serve --http' in a browser"
    )
    ui.add_argument("run", nargs="?", help="open this orchestration's page (default: the list)")
    _add_address(ui, "the server's")
    ui.add_argument("--no-open", action="store_true", help="print the address only")
    ui.set_defaults(handler="ui:cmd_ui")


def tcp_port(text: str) -> int:
    """A TCP port, 1 to 65535."""
    port = int(text)
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, got {port}")
    return port


def host_address(text: str) -> str:
    """A host name or address to listen on or connect to; not empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "is empty: give an address, e.g. 127.0.0.1 (the default, this machine only) or "
            "0.0.0.0 (every interface, which needs ORCHESTRATOR_HTTP_TOKEN)"
        )
    return text.strip()


def _add_address(parser: argparse.ArgumentParser, whose: str) -> None:
    """``--host`` and ``--port`` of an HTTP server (``serve --http`` and ``ui``)."""
    parser.add_argument(
        "--host",
        type=host_address,
        default="127.0.0.1",
        help=f"{whose} address (default 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=tcp_port,
        default=DEFAULT_HTTP_PORT,
        help=f"{whose} port (default {DEFAULT_HTTP_PORT})",
    )
