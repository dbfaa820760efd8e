"""Following a run in the terminal: the seed's progress display, redrawn live on a terminal."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress

from rich.console import Console
from rich.live import Live
from rich.text import Text

from multi_task_orchestrator.engine import Engine, RunSnapshot, render_status
from multi_task_orchestrator.server.cli.common import terminal_safe


async def follow(
    engine: Engine, run_id: str, console: Console, *, show: bool = True
) -> RunSnapshot:
    """Wait for a run of this engine to end; show its progress on ``console`` (live on a
    terminal, once at the end otherwise, not at all without ``show``). Its files are written
    when this returns (``report.html`` included)."""
    run = engine.runs.get(run_id)
    if run is None:
        return await engine.snapshot(run_id)
    if show and console.is_terminal:
        with Live(console=console, refresh_per_second=10, transient=False) as live:
            while not run.finished.is_set():
                live.update(Text(terminal_safe(render_status(run.snapshot(), now=time.time()))))
                with suppress(TimeoutError):
                    await asyncio.wait_for(run.finished.wait(), 0.1)
            final = render_status(await engine.snapshot(run_id), now=time.time())
            live.update(Text(terminal_safe(final)))
    else:
        await run.finished.wait()
        if show:
            snapshot = await engine.snapshot(run_id)
            console.print(render_status(snapshot, now=time.time()), markup=False)
    if run.taken_over:
        console.print(
            f"{run_id} was taken over by another process (this one stalled longer than its "
            "lease); waiting for it to finish there",
            markup=False,
        )
        await engine.wait_until_finished(run_id)
    await engine.settled(run_id)
    return await engine.snapshot(run_id)
