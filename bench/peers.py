"""``python -m bench --peers``: W1–W3 on this engine, plain asyncio, Ray, Dask and Prefect 3,
interleaved in one run, and the medians side by side with each one's ratio to this engine.

Each round runs every workload on every system in turn (asyncio, this engine, then each
peer), so a machine that slows down for a while slows every column alike. This engine and
asyncio run in this process (the engine opened once, warm); each peer runs in a process of its
own (``bench.peer_worker``), started and warmed up before the first round, so neither its
start-up nor its imports are timed. A peer that is not installed is shown as skipped, naming
the extra that installs it (``pip install -e '.[peers]'``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import documents
from bench.baseline import run_dag, sleeper
from bench.workloads import WARM_UP, Sizes, open_engine, run_document

WORKLOADS = ("W1", "W2", "W3")
# (peer, form): the column's name and how the peer is used (its documentation's way for the shape)
FORMS: dict[tuple[str, str], tuple[str, str]] = {
    ("ray", "tasks"): ("Ray", "@ray.remote tasks, refs as arguments; W3 an async actor"),
    ("dask", "submit"): ("Dask submit", "client.submit per task, futures as arguments"),
    ("dask", "batched"): ("Dask batched", "client.map; W2 a dask.delayed graph"),
    ("prefect", "flows"): ("Prefect 3", "@flow with task.submit, futures as arguments"),
}
IMPORT_NAMES = {"ray": "ray", "dask": "distributed", "prefect": "prefect"}
READY_TIMEOUT = 300.0  # seconds a peer may take to start (Prefect's server, Ray's cluster)


@dataclass
class Column:
    """One system's times for each workload, or why it was not measured."""

    name: str
    how: str
    version: str = ""
    seconds: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    skipped: str | None = None

    def median(self, workload: str) -> float | None:
        times = self.seconds.get(workload)
        return statistics.median(times) if times else None


def installed(peer: str) -> bool:
    try:
        return importlib.util.find_spec(IMPORT_NAMES[peer]) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None
        return False


class PeerProcess:
    """A ``bench.peer_worker`` process, asked for one workload at a time."""

    def __init__(self, peer: str, process: asyncio.subprocess.Process) -> None:
        self.peer = peer
        self._process = process
        self.version = ""

    @classmethod
    async def start(cls, peer: str, slots: int, log: Path) -> PeerProcess:
        with log.open("ab") as stderr:
            process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "bench.peer_worker", peer, str(slots)),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        started = cls(peer, process)
        ready = await started._answer(READY_TIMEOUT)
        started.version = str(ready.get("version", ""))
        return started

    async def run(self, form: str, workload: str, sizes: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None
        request = {"form": form, "workload": workload, "sizes": sizes}
        self._process.stdin.write((json.dumps(request) + "\n").encode())
        await self._process.stdin.drain()
        return await self._answer(None)

    async def _answer(self, timeout: float | None) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{self.peer} stopped (its log says why)")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), 30)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()


@asynccontextmanager
async def peer_processes(
    peers: list[str],
    slots: int,
    log: Path,
    console: Console,
    columns: dict[tuple[str, str], Column],
) -> AsyncIterator[dict[str, PeerProcess]]:
    started: dict[str, PeerProcess] = {}
    try:
        for peer in peers:
            forms = [key for key in FORMS if key[0] == peer]
            if not installed(peer):
                for key in forms:
                    columns[
                        key
                    ].skipped = f"not installed (pip install -e '.[peers]' installs {peer})"
                continue
            console.print(f"[dim]starting {peer}…[/dim]")
            try:
                process = await PeerProcess.start(peer, slots, log)
            except (RuntimeError, TimeoutError, ValueError) as exc:
                for key in forms:
                    columns[key].skipped = f"could not start: {exc} (see {log})"
                continue
            started[peer] = process
            for key in forms:
                columns[key].version = process.version
        yield started
    finally:
        for process in started.values():
            await process.close()


def sizes_of(sizes: Sizes) -> dict[str, Any]:
    return {
        "fan_in": sizes.fan_in,
        "chain": sizes.chain,
        "sleeps": sizes.sleeps,
        "sleep_seconds": sizes.sleep_seconds,
        "sleep_concurrency": sizes.sleep_concurrency,
    }


def document(workload: str, sizes: Sizes) -> dict[str, Any]:
    if workload == "W1":
        return documents.fan_in(sizes.fan_in)
    if workload == "W2":
        return documents.chain(sizes.chain)
    return documents.sleeps(sizes.sleeps, sizes.sleep_seconds, sizes.sleep_concurrency)


async def plain_asyncio(workload: str, sizes: Sizes) -> None:
    if workload == "W1":
        await run_dag(documents.fan_in_graph(sizes.fan_in))
    elif workload == "W2":
        await run_dag(documents.chain_graph(sizes.chain))
    else:
        graph = {f"s{i}": ([], sleeper(sizes.sleep_seconds)) for i in range(sizes.sleeps)}
        await run_dag(graph, max_concurrent=sizes.sleep_concurrency)  # type: ignore[arg-type]


async def timed(work: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await work()
    return time.perf_counter() - started


async def compare(
    sizes: Sizes,
    rounds: int,
    peers: list[str],
    home: Path,
    console: Console,
    workloads: tuple[str, ...] = WORKLOADS,
) -> list[Column]:
    """Every workload on every system, ``rounds`` times, interleaved; the columns in order."""
    ours = Column("this engine", "submit of the document to the end of the run, files included")
    base = Column("plain asyncio", "bench.baseline.run_dag: no persistence")
    columns = {key: Column(*FORMS[key]) for key in FORMS if key[0] in peers}
    wanted = sizes_of(sizes)
    async with (
        open_engine(home, "peers", max_tasks=max(10_000, sizes.fan_in + 1)) as engine,
        peer_processes(
            peers, sizes.sleep_concurrency, home / "peers.log", console, columns
        ) as started,
    ):
        await run_document(engine, WARM_UP)
        for round_number in range(1, rounds + 1):
            console.print(f"[dim]round {round_number}/{rounds}…[/dim]")
            for workload in workloads:
                seconds = await timed(lambda w=workload: plain_asyncio(w, sizes))  # type: ignore[misc]
                base.seconds.setdefault(workload, []).append(seconds)
                doc = document(workload, sizes)
                seconds = await timed(lambda d=doc: run_document(engine, d))  # type: ignore[misc]
                ours.seconds.setdefault(workload, []).append(seconds)
                for (peer, form), column in columns.items():
                    if peer not in started or workload in column.errors:
                        continue
                    answer = await started[peer].run(form, workload, wanted)
                    if "error" in answer:
                        column.errors[workload] = answer["error"]
                    else:
                        column.seconds.setdefault(workload, []).append(answer["seconds"])
    return [base, ours, *columns.values()]


def describe(workload: str, sizes: Sizes) -> str:
    if workload == "W1":
        return f"W1 {sizes.fan_in:,} no-ops + aggregate"
    if workload == "W2":
        return f"W2 chain of {sizes.chain:,}"
    return f"W3 {sizes.sleeps:,} x {sizes.sleep_seconds * 1000:g} ms at {sizes.sleep_concurrency}"


def cell(column: Column, workload: str, ours: float | None) -> str:
    if column.skipped:
        return "skipped"
    if workload in column.errors:
        return "failed"
    median = column.median(workload)
    if median is None:
        return "—"
    if ours is None or column.name == "this engine":
        return f"{median:.3f} s"
    return f"{median:.3f} s ({median / ours:.2f}x)"


def table(
    columns: list[Column], sizes: Sizes, rounds: int, workloads: tuple[str, ...] = WORKLOADS
) -> tuple[Table, str]:
    """The rich table and the same as Markdown: a row per workload, a column per system, the
    median of the rounds and (in brackets) its ratio to this engine's median."""
    title = f"W1–W3 side by side: medians of {rounds} interleaved round(s); (x) = / this engine"
    rich_table = Table(title=title)
    names = ["workload", *(c.name + (f" {c.version}" if c.version else "") for c in columns)]
    for name in names:
        rich_table.add_column(name)
    lines = [f"| {' | '.join(names)} |", "|" + "---|" * len(names)]
    for workload in workloads:
        ours = columns[1].median(workload)
        cells = [describe(workload, sizes), *(cell(c, workload, ours) for c in columns)]
        rich_table.add_row(*cells)
        lines.append(f"| {' | '.join(cells)} |")
    return rich_table, "\n".join(lines)


def notes(columns: list[Column]) -> list[str]:
    """How each system was used, and why any was skipped or failed."""
    found = []
    for column in columns:
        found.append(f"{column.name}: {column.skipped or column.how}")
        found += [f"  {column.name} {w} failed: {error}" for w, error in column.errors.items()]
    return found


async def run_peers(
    sizes: Sizes,
    rounds: int,
    peers: list[str],
    home: Path,
    console: Console,
    workloads: tuple[str, ...] = WORKLOADS,
) -> dict[str, Any]:
    columns = await compare(sizes, rounds, peers, home, console, workloads)
    rich_table, markdown = table(columns, sizes, rounds, workloads)
    console.print(rich_table)
    for line in notes(columns):
        console.print(line, markup=False, highlight=False)
    return {
        "rounds": rounds,
        "sizes": sizes_of(sizes),
        "columns": [asdict(column) for column in columns],
        "medians": {column.name: {w: column.median(w) for w in workloads} for column in columns},
        "markdown": markdown,
    }
