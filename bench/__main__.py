"""``python -m bench``: run the workloads, print the table, write the JSON; ``--peers``: W1–W3
beside Ray, Dask and Prefect 3 instead (``bench.peers``)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.workloads import FULL, QUICK, WORKLOADS, Row

DEFAULT_JSON = Path(__file__).parent / "results" / "latest.json"
PEERS_JSON = Path(__file__).parent / "results" / "peers.json"
PEERS = ("ray", "dask", "prefect")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument("--only", help="comma-separated workload ids, e.g. W1,W3")
    parser.add_argument("--skip", help="comma-separated workload ids shown as skipped, e.g. W6")
    parser.add_argument(
        "--json",
        type=Path,
        help=f"where to write results (default {DEFAULT_JSON.name}, "
        f"with --peers {PEERS_JSON.name}, in {DEFAULT_JSON.parent})",
    )
    parser.add_argument(
        "--peers",
        nargs="?",
        const=",".join(PEERS),
        metavar="LIST",
        help="run W1-W3 beside Ray, Dask and Prefect 3 (or those named, e.g. ray,dask), "
        "interleaved; each needs the 'peers' extra",
    )
    parser.add_argument(
        "--rounds", type=int, help="with --peers: interleaved rounds (default 3; 1 with --quick)"
    )
    parser.add_argument(
        "--markdown", action="store_true", help="also print the table as Markdown (the README's)"
    )
    args = parser.parse_args(argv)
    selected = [w.strip().upper() for w in args.only.split(",")] if args.only else list(WORKLOADS)
    skipped = [w.strip().upper() for w in args.skip.split(",")] if args.skip else []
    unknown = [w for w in [*selected, *skipped] if w not in WORKLOADS]
    if unknown:
        parser.error(
            f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}"
        )
    args.selected = selected
    args.skipped = skipped
    if args.peers is not None:
        args.peers = [p.strip().lower() for p in args.peers.split(",") if p.strip()]
        strangers = [p for p in args.peers if p not in PEERS]
        if strangers:
            parser.error(f"unknown peer(s) {', '.join(strangers)}; choose from {', '.join(PEERS)}")
    if args.peers is not None:
        beyond = [w for w in selected if w not in ("W1", "W2", "W3")]
        if args.only and beyond:
            parser.error(f"--peers compares W1, W2 and W3 only, not {', '.join(beyond)}")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be 1 or more")
    args.json = args.json or (PEERS_JSON if args.peers is not None else DEFAULT_JSON)
    return args


async def run_all(
    selected: list[str], skipped: list[str], quick: bool, console: Console
) -> list[Row]:
    sizes = QUICK if quick else FULL
    rows = []
    for workload_id in selected:
        if workload_id in skipped:
            rows.append(
                Row(workload_id, "skipped (--skip)", "", "", "", "", None, {"skipped": True})
            )
            continue
        with tempfile.TemporaryDirectory(prefix=f"bench-{workload_id}-") as folder:
            console.print(f"[dim]running {workload_id}…[/dim]")
            try:
                rows.append(await WORKLOADS[workload_id](sizes, Path(folder)))
            except Exception as exc:  # one broken workload must not hide the others' results
                console.print(f"[red]{workload_id} failed[/red]: {exc}")
                traceback.print_exc(file=sys.stderr)
                rows.append(Row(workload_id, "failed to run", str(exc)[:200], "", "", "", None))
    return rows


def render(rows: list[Row]) -> Table:
    table = Table(title="Multi-Task Orchestrator benchmarks")
    for column in ("id", "workload", "measured", "baseline (same run)", "ratio", "target", ""):
        table.add_column(column)
    for row in rows:
        verdict = {True: "[green]pass[/green]", False: "[red]FAIL[/red]", None: "[yellow]—[/]"}
        table.add_row(
            row.id,
            row.workload,
            row.measured,
            row.baseline,
            row.ratio,
            row.target,
            verdict[row.passed],
        )
    return table


def markdown(rows: list[Row]) -> str:
    """The table as the README shows it."""
    verdict = {True: "pass", False: "FAIL", None: "—"}
    lines = [
        "| id | workload | measured | baseline (same run) | ratio | target | |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = (row.id, row.workload, row.measured, row.baseline, row.ratio, row.target)
        lines.append(f"| {' | '.join(cells)} | {verdict[row.passed]} |")
    return "\n".join(lines)


def machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main_peers(args: argparse.Namespace, console: Console) -> int:
    from bench.peers import run_peers

    sizes = QUICK if args.quick else FULL
    rounds = args.rounds or (1 if args.quick else 3)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as folder:
        workloads = tuple(w for w in ("W1", "W2", "W3") if w in args.selected)
        compared = asyncio.run(
            run_peers(sizes, rounds, args.peers, Path(folder), console, workloads)
        )
    if args.markdown:
        print(compared["markdown"])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {"started_at": started, "quick": args.quick, "machine": machine(), **compared}
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    console.print(f"results written to {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 180)
    if args.peers is not None:
        return main_peers(args, console)
    started = time.time()
    rows = asyncio.run(run_all(args.selected, args.skipped, args.quick, console))
    console.print(render(rows))
    if args.markdown:
        print(markdown(rows))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "started_at": started,
        "quick": args.quick,
        "machine": machine(),
        "rows": [dataclasses.asdict(row) for row in rows],
    }
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    console.print(f"results written to {args.json}")
    broken = [row for row in rows if row.passed is None and not row.details.get("skipped")]
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
