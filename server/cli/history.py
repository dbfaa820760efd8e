"""The commands that read what runs did: list, status, results, report."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import webbrowser
from pathlib import Path
from typing import Any

from rich.console import Console

from multi_task_orchestrator.engine import (
    aggregated_results,
    render_status,
    render_summary,
    run_files,
    write_report,
)
from multi_task_orchestrator.server.cli.common import EXIT_OK, UsageError, open_engine
from multi_task_orchestrator.server.settings import load_settings

STATUS_ROWS = 50  # task rows in the status display, as in render_status


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


def cmd_status(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = load_settings()

    async def work() -> int:
        async with open_engine(settings) as engine:
            if args.json:  # every task, so not the status read, which has only those shown
                snapshot = await engine.snapshot(args.id)
            else:
                snapshot = await engine.status(args.id, display_rows=STATUS_ROWS)
        if args.json:
            exclude: dict[str, Any] = {"task_counts": True, "tasks": {"__all__": {"output"}}}
            out.print_json(snapshot.model_dump_json(exclude=exclude))
        else:
            out.print(f"{snapshot.id}  {snapshot.name}  [{snapshot.status.value}]", markup=False)
            out.print(render_status(snapshot, now=time.time(), max_rows=STATUS_ROWS), markup=False)
        return EXIT_OK

    return asyncio.run(work())


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
