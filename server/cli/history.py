"""The commands that read what runs did: list, status, results, report."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from multi_task_orchestrator.engine import (
    aggregated_results,
    iso,
    render_status,
    render_summary,
    run_files,
    write_report,
)
from multi_task_orchestrator.server.cli.common import EXIT_OK, UsageError, json_text, open_engine
from multi_task_orchestrator.server.settings import load_settings

if TYPE_CHECKING:
    from multi_task_orchestrator.engine import RunSnapshot

STATUS_ROWS = 50  # task rows in the status display, as in render_status
TIMES = ("created_at", "started_at", "finished_at")


def cmd_list(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = load_settings()

    async def work() -> int:
        async with open_engine(settings) as engine:
            rows = await engine.list(args.status, args.limit)
        if args.json:
            out.print_json(
                json.dumps(
                    [
                        {
                            "id": row.id,
                            "name": row.name,
                            "status": row.status,
                            "created_at": iso(row.created_at),
                            "finished_at": iso(row.finished_at),
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


def cmd_status(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = load_settings()

    async def work() -> int:
        async with open_engine(settings) as engine:
            if args.json:  # every task, so not the status read, which has only those shown
                snapshot = await engine.snapshot(args.id)
            else:
                snapshot = await engine.status(args.id, display_rows=STATUS_ROWS)
        if args.json:
            out.print_json(json.dumps(_status_json(snapshot)))
        else:
            out.print(f"{snapshot.id}  {snapshot.name}  [{snapshot.status.value}]", markup=False)
            out.print(render_status(snapshot, now=time.time(), max_rows=STATUS_ROWS), markup=False)
        return EXIT_OK

    return asyncio.run(work())


def _status_json(snapshot: RunSnapshot) -> dict[str, Any]:
    """``status --json``: the run and every task, times as ISO UTC (as ``list --json`` and
    the run files write them)."""
    exclude: dict[str, Any] = {"task_counts": True, "tasks": {"__all__": {"output"}}}
    answer: dict[str, Any] = snapshot.model_dump(mode="json", exclude=exclude)
    for row in (answer, *answer["tasks"]):
        for key in TIMES:
            if key in row:
                row[key] = iso(row[key])
    return answer


def cmd_report(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = load_settings()

    async def work() -> Path:
        async with open_engine(settings) as engine:
            return await write_report(engine.store, await engine.snapshot(args.id))

    path = asyncio.run(work())
    out.print(str(path), markup=False)
    if args.open and not webbrowser.open(path.as_uri()):
        err.print(f"could not open a web browser; open {path} yourself", markup=False)
    return EXIT_OK


def cmd_results(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = load_settings()

    async def work() -> int:
        async with open_engine(settings) as engine:
            snapshot = await engine.snapshot(args.id, include_outputs=True)
        results = aggregated_results(snapshot)
        if args.tasks:
            unknown = [task for task in args.tasks if task not in results["tasks"]]
            if unknown:
                known = ", ".join(list(results["tasks"])[:20])
                raise UsageError(f"no task {', '.join(unknown)} in {snapshot.id}; tasks: {known}")
            results["tasks"] = {key: results["tasks"][key] for key in args.tasks}
        if args.json:
            out.print_json(json_text(results))
            return EXIT_OK
        out.print(render_summary(snapshot, run_files(snapshot.run_dir)), markup=False)
        out.print("", markup=False)
        for task_id, task in results["tasks"].items():
            out.print(f"{task_id} [{task['state']}]", markup=False)
            if task.get("output") is not None:
                out.print(json.dumps(task["output"], indent=2, default=str), markup=False)
        return EXIT_OK

    return asyncio.run(work())
