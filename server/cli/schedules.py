"""``orchestrator schedule``: add, list, rm, pause and resume schedules of a document.

The schedules are written to the state database; ``orchestrator serve`` fires them (a server
already running picks a new one up within seconds). Ids may be shortened to a unique prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console

from multi_task_orchestrator.engine import (
    Schedule,
    ScheduleBook,
    ScheduleSpec,
    explain_cron,
    explain_every,
    iso,
    read_document,
)
from multi_task_orchestrator.server.cli.common import (
    EXIT_OK,
    open_engine,
    parse_vars,
)
from multi_task_orchestrator.server.settings import load_settings

SERVE_NOTE = "schedules fire while 'orchestrator serve' runs (stdio or --http)"


def cmd_add(args: argparse.Namespace, out: Console, err: Console) -> int:
    text = read_document(args.file, max_bytes=load_settings().max_document_bytes)
    values: dict[str, Any] = {
        "timezone": args.tz,
        "overlap": args.overlap,
        "catch_up": args.catch_up,
        "vars": parse_vars(args.var),
    }
    for field, value in (("cron", args.cron), ("every", args.every), ("name", args.name)):
        if value is not None:
            values[field] = value
    spec = ScheduleSpec.parse(values)
    added = _with_book(lambda book: book.add(spec, text))
    for issue in added.warnings:  # as run and validate show them
        err.print(f"{args.file}: {issue}", markup=False)
    _show([added], args.json, out, verb="scheduled")
    if not args.json:
        out.print(SERVE_NOTE, markup=False)
    return EXIT_OK


def cmd_list(args: argparse.Namespace, out: Console, err: Console) -> int:
    listed = _with_book(lambda book: book.list())
    if not listed and not args.json:
        out.print("no schedules; add one with 'orchestrator schedule add FILE --every 1h'")
        return EXIT_OK
    _show(listed, args.json, out)
    return EXIT_OK


def cmd_change(args: argparse.Namespace, out: Console, err: Console) -> int:
    change: str = args.change
    actions: dict[str, Callable[[ScheduleBook], Awaitable[Schedule]]] = {
        "rm": lambda book: book.delete(args.id),
        "pause": lambda book: book.pause(args.id),
        "resume": lambda book: book.resume(args.id),
    }
    changed = _with_book(actions[change])
    verb = {"rm": "deleted", "pause": "paused", "resume": "resumed"}[change]
    _show([changed], args.json, out, verb=verb)
    return EXIT_OK


def _with_book(work: Callable[[ScheduleBook], Awaitable[Any]]) -> Any:
    settings = load_settings()

    async def run() -> Any:
        async with open_engine(settings, with_vault=True) as engine:
            return await work(ScheduleBook(engine))

    return asyncio.run(run())


def _show(schedules: list[Schedule], as_json: bool, out: Console, *, verb: str = "") -> None:
    if as_json:
        out.print_json(json.dumps([_as_dict(schedule) for schedule in schedules]))
        return
    for schedule in schedules:
        row = schedule.row
        state = "paused" if row.paused else "active"
        head = f"{verb} " if verb else ""
        out.print(f"{head}{row.id}  {state:<6}  {row.name}  [{_when(schedule)}]", markup=False)
        zone = ZoneInfo(row.timezone)
        for ts in schedule.next_fires:
            local = datetime.fromtimestamp(ts, zone).isoformat(timespec="seconds")
            out.print(f"  next {iso(ts)}  ({local} {row.timezone})", markup=False)
        last = "none yet"
        if row.last_run_id:
            last = f"{row.last_run_id} ({schedule.last_run_status or 'gone'})"
        out.print(
            f"  fires {row.fires}, skipped {row.skips}; overlap {row.overlap}, catch-up "
            f"{row.catch_up}; last run {last}",
            markup=False,
        )
        if row.last_error:
            out.print(f"  last error: {row.last_error}", markup=False)


def _when(schedule: Schedule) -> str:
    row = schedule.row
    if row.cron is not None:
        return f"cron '{row.cron}' = {explain_cron(row.cron)}, {row.timezone}"
    assert row.every is not None
    return explain_every(row.every)


def _as_dict(schedule: Schedule) -> dict[str, Any]:
    row = schedule.row
    return {
        "id": row.id,
        "name": row.name,
        "cron": row.cron,
        "every_seconds": row.every,
        "timezone": row.timezone,
        "overlap": row.overlap,
        "catch_up": row.catch_up,
        "paused": row.paused,
        "next_fires": [iso(ts) for ts in schedule.next_fires],
        "created_at": iso(row.created_at),
        "last_fire_at": iso(row.last_fire_at),
        "last_run_id": row.last_run_id,
        "last_run_status": schedule.last_run_status,
        "fires": row.fires,
        "skips": row.skips,
        "last_error": row.last_error,
    }
