"""The workloads (W1–W10), each measured against its baseline in the same run.

Every workload is ``async def wN(sizes, home) -> Row``; ``home`` is a fresh folder for its
databases and run folders. Times are wall-clock (``time.perf_counter``) from the submission of
the document to the end of the run, so validation and persistence are part of the engine's time.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import documents
from bench.baseline import run_dag, run_dag_persisted, sleeper
from bench.site import serve
from multi_task_orchestrator.engine.engine import Engine
from multi_task_orchestrator.engine.state import RunSnapshot, RunStatus
from multi_task_orchestrator.server.build import build_engine
from multi_task_orchestrator.server.settings import Settings

CHROMIUM = Path("/usr/lib/chromium/chromium")


@dataclass(frozen=True)
class Sizes:
    """How big each workload is; ``QUICK`` is for the smoke test."""

    fan_in: int = 2_000
    chain: int = 500
    sleeps: int = 1_000
    sleep_seconds: float = 0.05
    sleep_concurrency: int = 50
    scale: tuple[int, ...] = (1_000, 10_000, 100_000)
    gets: int = 1_000
    get_concurrency: int = 50
    pages: int = 50
    browser_limit: int = 5
    submit_tasks: int = 1_000
    status_tasks: int = 10_000
    status_calls: int = 20
    busy_tasks: int = 10_000
    busy_document_bytes: int = 5_000_000
    busy_output_megabytes: int = 200


FULL = Sizes()
QUICK = Sizes(
    fan_in=50,
    chain=20,
    sleeps=20,
    sleep_seconds=0.01,
    sleep_concurrency=5,
    scale=(20, 40, 80),
    gets=20,
    get_concurrency=5,
    pages=4,
    browser_limit=2,
    submit_tasks=20,
    status_tasks=50,
    status_calls=3,
    busy_tasks=200,
    busy_document_bytes=100_000,
    busy_output_megabytes=1,
)


@dataclass
class Row:
    """One line of the table."""

    id: str
    workload: str
    measured: str
    baseline: str
    ratio: str
    target: str
    passed: bool | None  # None: not measured (skipped or failed to run)
    details: dict[str, Any] = field(default_factory=dict)


async def timed(work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await work()
    return time.perf_counter() - started, result


async def timed_with_cpu(work: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """Wall seconds, and the CPU seconds the whole process spent meanwhile (every thread's:
    the event loop's, the store writer's, the workers')."""
    cpu = time.process_time()
    seconds, _ = await timed(work)
    return seconds, time.process_time() - cpu


async def run_document(engine: Engine, document: dict[str, Any]) -> RunSnapshot:
    run_id = await engine.submit(document)
    snapshot = await engine.wait(run_id)
    if snapshot.status is not RunStatus.succeeded:
        failed = [t for t in snapshot.tasks if t.state != "succeeded"][:3]
        raise RuntimeError(f"run ended {snapshot.status}: {[(t.task_id, t.error) for t in failed]}")
    return snapshot


@asynccontextmanager
async def open_engine(home: Path, name: str, **settings: Any) -> AsyncIterator[Engine]:
    """The engine the CLI would build with these settings (``Settings`` fields), in a folder of
    its own, attempts always in this process, no vault."""
    folder = home / name
    folder.mkdir(parents=True, exist_ok=True)
    configured = Settings(home=folder, backend="local", **settings)
    async with build_engine(configured, vault="none") as built:
        yield built.engine


WARM_UP = {"name": "warm-up", "tasks": [{"id": "a", "type": "delay", "config": {"value": 1}}]}


async def engine_time(home: Path, name: str, document: dict[str, Any], **settings: Any) -> float:
    """Seconds from submit to the end of the run, on an engine that has run once before (the
    first run of a process pays for imports and pydantic's first validations)."""
    seconds, _ = await engine_time_and_cpu(home, name, document, **settings)
    return seconds


async def engine_time_and_cpu(
    home: Path, name: str, document: dict[str, Any], **settings: Any
) -> tuple[float, float]:
    """``engine_time``, and the CPU seconds the process spent meanwhile (``timed_with_cpu``)."""
    async with open_engine(home, name, **settings) as engine:
        await run_document(engine, WARM_UP)
        return await timed_with_cpu(lambda: run_document(engine, document))


# --- W1–W4: the scheduler and the store --------------------------------------------------------


async def w1(sizes: Sizes, home: Path) -> Row:
    count = sizes.fan_in
    graph = documents.fan_in_graph(count)
    base, _ = await timed(lambda: run_dag(graph))
    persisted, persisted_cpu = await timed_with_cpu(
        lambda: run_dag_persisted(graph, home / "baseline.db")
    )
    ours, ours_cpu = await engine_time_and_cpu(home, "w1", documents.fan_in(count))
    ratio = ours / base
    return Row(
        "W1",
        f"{count:,} no-op tasks + 1 aggregate, persisted",
        f"{ours:.3f} s (CPU {ours_cpu:.3f} s)",
        f"{base:.3f} s plain asyncio; {persisted:.3f} s asyncio + SQLite group commit "
        f"(CPU {persisted_cpu:.3f} s)",
        f"{ratio:.1f}x; {ours / persisted:.1f}x",
        "<= 4x; <= 1.5x persisted",
        ratio <= 4 and ours / persisted <= 1.5,
        {
            "seconds": ours,
            "cpu_seconds": ours_cpu,
            "baseline_seconds": base,
            "persisted_baseline_seconds": persisted,
            "persisted_baseline_cpu_seconds": persisted_cpu,
            "ratio": ratio,
            "ratio_to_persisted": ours / persisted,
        },
    )


async def w2(sizes: Sizes, home: Path) -> Row:
    length = sizes.chain
    graph = documents.chain_graph(length)
    base, _ = await timed(lambda: run_dag(graph))
    persisted, _ = await timed(lambda: run_dag_persisted(graph, home / "baseline.db"))
    ours = await engine_time(home, "w2", documents.chain(length))
    overhead_ms = (ours - base) / length * 1000
    persisted_ms = (persisted - base) / length * 1000
    return Row(
        "W2",
        f"chain of {length} tasks passing outputs on",
        f"{ours:.3f} s",
        f"{base:.3f} s plain asyncio; {persisted:.3f} s asyncio + SQLite group commit "
        f"({persisted_ms:.2f} ms/step)",
        f"{overhead_ms:.2f} ms/step",
        "<= 0.3 ms/step overhead",
        overhead_ms <= 0.3,
        {
            "seconds": ours,
            "baseline_seconds": base,
            "persisted_baseline_seconds": persisted,
            "overhead_ms_per_step": overhead_ms,
            "persisted_overhead_ms_per_step": persisted_ms,
        },
    )


async def w3(sizes: Sizes, home: Path) -> Row:
    count, seconds, slots = sizes.sleeps, sizes.sleep_seconds, sizes.sleep_concurrency
    ideal = count / slots * seconds
    graph = {f"s{i}": ([], sleeper(seconds)) for i in range(count)}
    base, _ = await timed(lambda: run_dag(graph, max_concurrent=slots))
    ours = await engine_time(home, "w3", documents.sleeps(count, seconds, slots))
    ratio = ours / ideal
    return Row(
        "W3",
        f"{count:,} sleeps of {seconds * 1000:g} ms at max_concurrent {slots}",
        f"{ours:.3f} s",
        f"{ideal:.2f} s ideal (asyncio {base:.3f} s)",
        f"{ratio:.2f}x",
        "<= 1.10x ideal",
        ratio <= 1.10,
        {"seconds": ours, "ideal_seconds": ideal, "asyncio_seconds": base, "ratio": ratio},
    )


async def w4(sizes: Sizes, home: Path) -> Row:
    measured: list[dict[str, float]] = []
    for count in sizes.scale:
        folder = home / f"w4-{count}"
        folder.mkdir(parents=True)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.scale",
            str(count),
            str(folder),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"bench.scale {count} failed: {err.decode()[-2000:]}")
        measured.append(json.loads(out))
    small, middle, large = measured
    growth = large["per_task_ms"] / small["per_task_ms"]
    rss, rss_large = middle["peak_rss_mb"], large["peak_rss_mb"]
    per_task = " / ".join(f"{m['per_task_ms'] * 1000:.0f}" for m in measured)
    sizes_text = " / ".join(f"{int(m['count']):,}" for m in measured)
    return Row(
        "W4",
        f"W1 at {sizes_text} tasks (a process each)",
        f"{per_task} µs/task; peak RSS {rss:.0f} MB at {int(middle['count']):,}, "
        f"{rss_large:.0f} MB at {int(large['count']):,}",
        f"itself at {int(small['count']):,}",
        f"{growth:.2f}x per task",
        "<= 1.2x per task; <= 150 MB; <= 500 MB",
        growth <= 1.2 and rss <= 150 and rss_large <= 500,
        {
            "sizes": measured,
            "per_task_growth": growth,
            "peak_rss_mb_middle": rss,
            "peak_rss_mb_large": rss_large,
        },
    )


# --- W5: HTTP ----------------------------------------------------------------------------------


async def w5(sizes: Sizes, home: Path) -> Row:
    count, slots = sizes.gets, sizes.get_concurrency
    with serve() as base_url:
        urls = [f"{base_url}/item/{i}" for i in range(count)]

        async def hand_written() -> None:
            semaphore = asyncio.Semaphore(slots)
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
            async with httpx.AsyncClient(limits=limits) as client:

                async def get(url: str) -> Any:
                    async with semaphore:
                        response = await client.get(url)
                        response.raise_for_status()
                        return response.json()

                await asyncio.gather(*(get(url) for url in urls))

        await hand_written()  # warm the server up
        base, _ = await timed(hand_written)
        # the per-host limit (6 by default, to be polite to real sites) is raised to match
        ours = await engine_time(home, "w5", documents.gets(urls, slots), per_host_limit=slots)
    ours_rate, base_rate = count / ours, count / base
    ratio = ours_rate / base_rate
    return Row(
        "W5",
        f"{count:,} HTTP GETs, concurrency {slots} (per_host raised to {slots})",
        f"{ours_rate:.0f} req/s",
        f"{base_rate:.0f} req/s httpx + semaphore",
        f"{ratio:.2f}x",
        ">= 0.8x",
        ratio >= 0.8,
        {"seconds": ours, "baseline_seconds": base, "ratio": ratio},
    )


# --- W6: the browser ---------------------------------------------------------------------------


async def w6(sizes: Sizes, home: Path) -> Row:
    from playwright.async_api import Browser, async_playwright

    from multi_task_orchestrator.engine.runners.browser.pool import LAUNCH_ARGS

    count, limit = sizes.pages, sizes.browser_limit
    selector = ".item"

    async def extract(page: Any, url: str) -> list[str]:
        await page.goto(url)
        return [await element.inner_text() for element in await page.query_selector_all(selector)]

    async def reused_pages(browser: Browser, urls: list[str]) -> float:
        context = await browser.new_context()
        pages = [await context.new_page() for _ in range(limit)]
        queue: asyncio.Queue[str] = asyncio.Queue()
        for url in urls:
            queue.put_nowait(url)

        async def worker(page: Any) -> None:
            while not queue.empty():
                await extract(page, queue.get_nowait())

        started = time.perf_counter()
        await asyncio.gather(*(worker(page) for page in pages))
        elapsed = time.perf_counter() - started
        await context.close()
        return elapsed

    async def fresh_contexts(browser: Browser, urls: list[str]) -> None:
        semaphore = asyncio.Semaphore(limit)

        async def one(url: str) -> None:
            async with semaphore:
                context = await browser.new_context()
                try:
                    await extract(await context.new_page(), url)
                finally:
                    await context.close()

        await asyncio.gather(*(one(url) for url in urls))

    with serve() as base_url:
        urls = [f"{base_url}/page/{i}" for i in range(count)]
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=list(LAUNCH_ARGS)
            )
            await reused_pages(browser, urls[:limit])  # warm up
            reused = await reused_pages(browser, urls)
            fresh, _ = await timed(lambda: fresh_contexts(browser, urls))
            await browser.close()
        async with open_engine(home, "w6", browser_path=CHROMIUM, browser_limit=limit) as engine:
            # the first run launches Chromium and opens the pages; the second is measured
            await run_document(engine, documents.extractions(urls[:limit], selector))
            ours, _ = await timed(
                lambda: run_document(engine, documents.extractions(urls, selector))
            )
    rates = {
        name: count / seconds
        for name, seconds in (("ours", ours), ("reused", reused), ("fresh", fresh))
    }
    versus_reused, versus_fresh = rates["ours"] / rates["reused"], rates["ours"] / rates["fresh"]
    return Row(
        "W6",
        f"{count} browser extractions, limit {limit}",
        f"{rates['ours']:.1f} pages/s",
        f"{rates['reused']:.1f} pages/s {limit} reused pages; "
        f"{rates['fresh']:.1f} pages/s fresh context per task",
        f"{versus_reused:.2f}x; {versus_fresh:.1f}x",
        ">= 0.8x reused; >= 3x fresh",
        versus_reused >= 0.8 and versus_fresh >= 3,
        {
            "seconds": ours,
            "reused_seconds": reused,
            "fresh_seconds": fresh,
            "ratio_reused": versus_reused,
            "ratio_fresh": versus_fresh,
        },
    )


# --- W7: the MCP face --------------------------------------------------------------------------


async def w7(sizes: Sizes, home: Path) -> Row:
    from mcp import Client

    from multi_task_orchestrator.server.app import create_server

    settings = Settings(home=home / "w7", max_tasks=max(10_000, sizes.status_tasks))
    async with Client(create_server(settings)) as client:

        async def call(tool: str, arguments: dict[str, Any]) -> tuple[float, dict[str, Any]]:
            seconds, result = await timed(lambda: client.call_tool(tool, arguments))
            if result.is_error:
                raise RuntimeError(f"{tool} failed: {result.content}")
            return seconds, result.structured_content or {}

        async def wait_for(run_id: str) -> None:
            finished = False
            while not finished:
                _, status = await call(
                    "wait_for_orchestration", {"id": run_id, "timeout_seconds": 30}
                )
                finished = status["finished"]

        submit_document = documents.sleeps(sizes.submit_tasks, 0, 10)
        submit_times = []
        for _ in range(5):  # each on a server with no other run going
            seconds, submitted = await call("submit_orchestration", {"spec": submit_document})
            submit_times.append(seconds)
            await wait_for(submitted["id"])
        _, big = await call(
            "submit_orchestration", {"spec": documents.sleeps(sizes.status_tasks, 0, 10_000)}
        )
        run_id = big["id"]
        await wait_for(run_id)
        # once the run's report is written too (get_results waits for it): status on a busy
        # server is W8's subject
        await call("get_results", {"id": run_id, "max_chars": 200})
        status_times = [
            (await call("get_status", {"id": run_id}))[0] for _ in range(sizes.status_calls)
        ]
        # the same call on a one-task run: what the SDK's round trip costs by itself
        _, small = await call("submit_orchestration", {"spec": documents.sleeps(1, 0, 1)})
        await wait_for(small["id"])
        floor_times = [
            (await call("get_status", {"id": small["id"]}))[0] for _ in range(sizes.status_calls)
        ]
    submit_ms = statistics.median(submit_times) * 1000
    status_ms = statistics.median(status_times) * 1000
    floor_ms = statistics.median(floor_times) * 1000
    return Row(
        "W7",
        f"MCP submit of {sizes.submit_tasks:,} tasks; get_status of {sizes.status_tasks:,}",
        f"submit {submit_ms:.0f} ms; status p50 {status_ms:.1f} ms",
        f"get_status of a 1-task run: {floor_ms:.1f} ms",
        "—",
        "submit <= 100 ms; status p50 <= 10 ms",
        submit_ms <= 100 and status_ms <= 10,
        {
            "submit_ms": [t * 1000 for t in submit_times],
            "status_ms": [t * 1000 for t in status_times],
            "one_task_status_ms": [t * 1000 for t in floor_times],
        },
    )


async def w8(sizes: Sizes, home: Path) -> Row:
    from bench.busy import answering_while_busy  # it imports this module's Row and Sizes

    return await answering_while_busy(sizes, home)


async def w9(sizes: Sizes, home: Path) -> Row:
    from bench.startup import loading  # it imports this module's Row and Sizes

    return await loading(sizes, home)


async def w10(sizes: Sizes, home: Path) -> Row:
    from bench.startup import startup

    return await startup(sizes, home)


WORKLOADS: dict[str, Callable[[Sizes, Path], Awaitable[Row]]] = {
    "W1": w1,
    "W2": w2,
    "W3": w3,
    "W4": w4,
    "W5": w5,
    "W6": w6,
    "W7": w7,
    "W8": w8,
    "W9": w9,
    "W10": w10,
}
