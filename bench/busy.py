"""W8: does the server keep answering while it is busy?

A real ``orchestrator serve --http`` process is measured from the outside: this process calls
``get_status`` on a small run over and over, while a second client process asks the same server
to do something large, one thing after the other — validate a 5 MB document, run a
10,000-task document (submitted, then waited for until its end), and run a task whose output
is a 200 MB JSON body (read from a local site, kept as the task's output file). Both clients
live outside the server (as an agent and a person watching would), so the times are the
server's, not a shared event loop's. The baseline is the same call on the idle server.

``python -m bench.busy URL TOOL FILE`` is the second client: one call with the document from
FILE; a submitted run is waited for until it ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench import documents
from bench.site import free_port, serve
from bench.workloads import Row, Sizes, timed

START_SECONDS = 30
DOCUMENT_BYTES = 5_000_000  # a little under the server's 5 MiB limit


async def answering_while_busy(sizes: Sizes, home: Path) -> Row:
    wide = home / "wide.yaml"
    wide.write_text(documents.yaml_wide(sizes.busy_tasks, sizes.busy_document_bytes), "utf-8")
    chain = home / "chain.yaml"
    chain.write_text(documents.yaml_chain(sizes.busy_tasks), encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(
        ORCHESTRATOR_HOME=str(home / "w8"),
        ORCHESTRATOR_MAX_TASKS=str(sizes.busy_tasks),
        ORCHESTRATOR_MAX_RESPONSE_BYTES=str(sizes.busy_output_megabytes * 1_100_000),
    )
    command = [sys.executable, "-m", "multi_task_orchestrator.server.cli", "serve", "--http"]
    server = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with serve() as site:
            large = home / "large.json"
            large_url = f"{site}/large/{sizes.busy_output_megabytes}"
            large.write_text(json.dumps(documents.gets([large_url], 1)), encoding="utf-8")
            phases = await _measure(url, server, {"validate": wide, "run": chain, "output": large})
    finally:
        server.terminate()
        server.wait(timeout=15)
    idle = phases.pop("idle")
    busy = [seconds for times in phases.values() for seconds in times]
    p50, p99 = _percentile(busy, 50) * 1000, _percentile(busy, 99) * 1000
    idle_ms = statistics.median(idle) * 1000
    each = "; ".join(
        f"{name} p99 {_percentile(times, 99) * 1000:.0f} ms" for name, times in phases.items()
    )
    megabytes = sizes.busy_document_bytes / 1e6
    return Row(
        "W8",
        f"get_status while the server validates a {megabytes:g} MB document, runs "
        f"{sizes.busy_tasks:,} tasks, keeps a {sizes.busy_output_megabytes} MB output",
        f"p50 {p50:.1f} ms; p99 {p99:.0f} ms; max {max(busy) * 1000:.0f} ms ({len(busy)} "
        f"calls: {each})",
        f"idle server: p50 {idle_ms:.1f} ms",
        f"{p50 / idle_ms:.1f}x (p50)",
        "p99 <= 100 ms in each",
        all(_percentile(times, 99) <= 0.1 for times in phases.values()),
        {
            f"{name}_ms": [t * 1000 for t in times]
            for name, times in [("idle", idle), *phases.items()]
        },
    )


async def _measure(
    url: str, server: subprocess.Popen[bytes], work: dict[str, Path]
) -> dict[str, list[float]]:
    """``get_status`` times: on the idle server, then while a second client has each piece of
    ``work`` done (validate for "validate", submit and wait for the rest)."""
    async with await _connect(url, server) as client:
        small = await client.call_tool(
            "submit_orchestration", {"spec": documents.sleeps(1, 0, 1), "wait_seconds": 10}
        )
        small_id = (small.structured_content or {})["id"]

        async def status_seconds() -> float:
            seconds, _ = await timed(lambda: client.call_tool("get_status", {"id": small_id}))
            return seconds

        async def times_while(tool: str, document: Path) -> list[float]:
            busy = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.busy", url, tool, str(document)
            )
            times: list[float] = []
            while busy.returncode is None:
                times.append(await status_seconds())
                await asyncio.sleep(0.002)
            if await busy.wait() != 0:
                raise RuntimeError(f"{tool} of {document.name} failed")
            return times

        times = {"idle": [await status_seconds() for _ in range(50)]}
        for name, document in work.items():
            tool = "validate_orchestration" if name == "validate" else "submit_orchestration"
            times[name] = await times_while(tool, document)
        return times


async def _connect(url: str, server: subprocess.Popen[bytes]) -> Client:
    """A client of the server at ``url`` once it answers (it starts in a second or two)."""
    deadline = time.monotonic() + START_SECONDS
    while True:
        client = Client(streamable_http_client(url))
        try:
            await client.__aenter__()
        except Exception:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the orchestrator server did not start") from None
            await asyncio.sleep(0.1)
            continue
        await client.__aexit__(None, None, None)
        return Client(streamable_http_client(url))


def _percentile(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, len(ordered) * percent // 100)]


async def _call(url: str, tool: str, path: str) -> int:
    """Call ``tool`` with the document at ``path``; a submitted run is waited for until it
    ends. 0 when the call (and the run) succeeded."""
    async with Client(streamable_http_client(url)) as client:
        result = await client.call_tool(tool, {"spec": Path(path).read_text(encoding="utf-8")})
        if result.is_error:
            return 1
        if tool != "submit_orchestration":
            return 0
        run_id = (result.structured_content or {})["id"]
        while True:
            status = await client.call_tool(
                "wait_for_orchestration", {"id": run_id, "timeout_seconds": 30}
            )
            answer = status.structured_content or {}
            if answer.get("finished"):
                return 0 if answer.get("status") == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(_call(*sys.argv[1:4])))
