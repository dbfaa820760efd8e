"""The commands about a document rather than a run: validate (its errors or plan) and schema
(the JSON Schema every document follows)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console

from multi_task_orchestrator.engine import (
    DocumentError,
    Validation,
    document_json_schema,
    load_file,
)
from multi_task_orchestrator.server.build import open_checker
from multi_task_orchestrator.server.cli.common import EXIT_OK, EXIT_USAGE, parse_vars
from multi_task_orchestrator.server.settings import load_settings

if TYPE_CHECKING:  # the model with the runners' fields is built when first used
    from multi_task_orchestrator.server.settings import Settings


def cmd_validate(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = load_settings()
    return asyncio.run(_validate(args, settings, out, err))


async def _validate(
    args: argparse.Namespace, settings: Settings, out: Console, err: Console
) -> int:
    extra_vars = parse_vars(args.var)
    try:
        raw = load_file(args.file, max_bytes=settings.max_document_bytes)
    except DocumentError as exc:
        # An unreadable file or malformed YAML is reported like every other problem (and as
        # JSON with --json), not as a bare error message.
        result = Validation(orchestration=None, issues=list(exc.issues))
    else:
        async with open_checker(settings) as checker:
            result = checker.validate(raw, extra_vars=extra_vars)
            await checker.machine_warnings(result)
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


def cmd_schema(args: argparse.Namespace, out: Console, err: Console) -> int:
    from multi_task_orchestrator.engine import discover

    configs = {name: runner.config_model for name, runner in discover().items()}
    sys.stdout.write(json.dumps(document_json_schema(configs), indent=2) + "\n")
    sys.stdout.flush()  # a closed pipe fails here, inside main, not at interpreter exit
    return EXIT_OK
