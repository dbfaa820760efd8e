"""CPU-heavy work (reading and checking a large document, say) off the event loop's thread,
without starving that thread: ``await cpu_bound(work)``.

A worker thread alone is not enough. Python's threads share one interpreter lock, and a thread
that wants it back waits for the holder's switch interval (5 ms by default) at every handover:
an MCP answer needs dozens of handovers (socket, SQLite thread, timers), so ``get_status`` took
60–260 ms (median) while a 10,000-task document was validated next to it. While such work runs,
the switch interval is shortened (measured: median ~10–20 ms, the work ~1.3× slower when the
loop is busy, unchanged when it is idle), and the cyclic collector is paused
(``collector_paused``). Concurrent calls are counted: the last one to end restores the interval.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from multi_task_orchestrator.engine.gc_policy import collector_paused

T = TypeVar("T")

SWITCH_INTERVAL_SECONDS = 0.0005  # while CPU-heavy work runs (Python's default: 0.005)

_lock = threading.Lock()
_running = 0
_interval_before = 0.0


async def cpu_bound(work: Callable[[], T]) -> T:
    """``work()`` in a worker thread, the event loop kept responsive meanwhile."""
    return await asyncio.to_thread(_responsive, work)


def _responsive(work: Callable[[], T]) -> T:
    with _short_switch_interval(), collector_paused():
        return work()


@contextmanager
def _short_switch_interval() -> Iterator[None]:
    global _running, _interval_before
    with _lock:
        if _running == 0:
            _interval_before = sys.getswitchinterval()
            sys.setswitchinterval(min(_interval_before, SWITCH_INTERVAL_SECONDS))
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0:
                sys.setswitchinterval(_interval_before)
