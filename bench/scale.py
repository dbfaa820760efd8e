"""One size of W4 in a process of its own, so its peak memory is its own.

``python -m bench.scale COUNT HOME`` runs the W1 fan-in at COUNT tasks and prints one JSON
object: ``{"count", "seconds", "per_task_ms", "peak_rss_mb"}`` (peak RSS is VmHWM).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path

from bench.documents import fan_in
from multi_task_orchestrator.engine.state import RunStatus
from multi_task_orchestrator.server.build import build_engine
from multi_task_orchestrator.server.settings import Settings


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def measure(count: int, home: Path) -> dict[str, float]:
    document = fan_in(count)
    settings = Settings(
        home=home,
        backend="local",
        max_tasks=max(10_000, count + 1),
        max_document_bytes=200 * count + 5_000_000,  # the 100k document is ~7 MB of JSON
    )
    async with build_engine(settings, vault="none") as built:
        engine = built.engine
        started = time.perf_counter()
        run_id = await engine.submit(document)
        snapshot = await engine.wait(run_id)
        seconds = time.perf_counter() - started
    if snapshot.status is not RunStatus.succeeded:
        raise RuntimeError(f"the {count}-task run ended {snapshot.status}")
    return {
        "count": count,
        "seconds": seconds,
        "per_task_ms": seconds / (count + 1) * 1000,
        "peak_rss_mb": peak_rss_mb(),
    }


if __name__ == "__main__":
    result = asyncio.run(measure(int(sys.argv[1]), Path(sys.argv[2])))
    print(json.dumps(result))
