"""The approval commands: ``approve`` and ``reject`` decide a task of type ``approval`` that
waits for a person (in a run of this or any process: ``serve``, a foreground ``run``), and
``approvals`` lists what waits, every run."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from rich.console import Console

from multi_task_orchestrator.engine import ApprovalRow, iso
from multi_task_orchestrator.server.cli.common import EXIT_OK, open_engine
from multi_task_orchestrator.server.settings import load_settings

DECIDED_BY = "cli"


def cmd_decide(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = load_settings()

    async def work() -> ApprovalRow:
        async with open_engine(settings) as engine:
            decide = engine.approve if args.decision == "approve" else engine.reject
            return await decide(args.id, args.task, note=args.note, by=DECIDED_BY)

    row = asyncio.run(work())
    out.print(
        f"{row.orchestration_id} {row.task_id}: {row.decision} at {iso(row.decided_at)}",
        markup=False,
    )
    return EXIT_OK


def cmd_approvals(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = load_settings()

    async def work() -> list[ApprovalRow]:
        async with open_engine(settings) as engine:
            return await engine.pending_approvals(args.id)

    rows = asyncio.run(work())
    if args.json:
        out.print_json(json.dumps([_as_json(row) for row in rows]))
        return EXIT_OK
    if not rows:
        out.print("no task waits for approval", markup=False)
    now = time.time()
    for row in rows:
        deadline = f", deadline {iso(row.deadline)}" if row.deadline is not None else ""
        waited = round(now - row.requested_at)
        out.print(
            f"{row.orchestration_id}  {row.task_id}  {row.message}  (waiting {waited}s{deadline})",
            markup=False,
        )
    if rows:
        out.print("decide with: orchestrator approve|reject ID TASK [--note TEXT]", markup=False)
    return EXIT_OK


def _as_json(row: ApprovalRow) -> dict[str, Any]:
    return {
        "id": row.orchestration_id,
        "task_id": row.task_id,
        "message": row.message,
        "requested_at": iso(row.requested_at),
        "deadline": iso(row.deadline),
    }
