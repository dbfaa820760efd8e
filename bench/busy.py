"""W8: does the server keep answering while it is busy with a large document?

A real ``orchestrator serve --http`` process is measured from the outside: this process calls
``get_status`` on a small run over and over, while a second client process asks the same server
to validate, then submit, a large YAML document. Both clients live outside the server (as an
agent and a person watching would), so the times are the server's, not a shared event loop's.
The baseline is the same call on the idle server.

``python -m bench.busy URL TOOL FILE`` is the second client: one call, the document from FILE.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench import documents
from bench.site import free_port
from bench.workloads import Row, Sizes, timed

START_SECONDS = 30


async def answering_while_busy(sizes: Sizes, home: Path) -> Row:
    document = home / "large.yaml"
    document.write_text(documents.yaml_chain(sizes.busy_tasks), encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(ORCHESTRATOR_HOME=str(home / "w8"), ORCHESTRATOR_MAX_TASKS=str(sizes.busy_tasks))
    command = [sys.executable, "-m", "multi_task_orchestrator.server.cli", "serve", "--http"]
    server = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with await _connect(url, server) as client:
            small = await client.call_tool(
                "submit_orchestration", {"spec": documents.sleeps(1, 0, 1), "wait_seconds": 10}
            )
            small_id = (small.structured_content or {})["id"]

            async def status_seconds() -> float:
                seconds, _ = await timed(lambda: client.call_tool("get_status", {"id": small_id}))
                return seconds

            async def times_while(tool: str) -> list[float]:
                busy = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.busy", url, tool, str(document)
                )
                times: list[float] = []
                while busy.returncode is None:
                    times.append(await status_seconds())
                    await asyncio.sleep(0.002)
                if await busy.wait() != 0:
                    raise RuntimeError(f"{tool} of the large document failed")
                return times

            idle = [await status_seconds() for _ in range(50)]
            validating = await times_while("validate_orchestration")
            submitting = await times_while("submit_orchestration")
    finally:
        server.terminate()
        server.wait(timeout=15)
    busy = validating + submitting
    p50, p99 = _percentile(busy, 50) * 1000, _percentile(busy, 99) * 1000
    idle_ms = statistics.median(idle) * 1000
    return Row(
        "W8",
        f"get_status while the server validates, then submits, {sizes.busy_tasks:,} tasks",
        f"p50 {p50:.1f} ms; p99 {p99:.0f} ms; max {max(busy) * 1000:.0f} ms ({len(busy)} calls)",
        f"idle server: p50 {idle_ms:.1f} ms",
        f"{p50 / idle_ms:.1f}x (p50)",
        "p99 <= 100 ms",
        p99 <= 100,
        {
            "validating_ms": [t * 1000 for t in validating],
            "submitting_ms": [t * 1000 for t in submitting],
            "idle_ms": [t * 1000 for t in idle],
        },
    )


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
    async with Client(streamable_http_client(url)) as client:
        result = await client.call_tool(tool, {"spec": Path(path).read_text(encoding="utf-8")})
    return 1 if result.is_error else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_call(*sys.argv[1:4])))
