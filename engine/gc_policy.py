"""How often Python's cyclic garbage collector runs in a process that hosts the engine.

A run holds tens of thousands of objects (nodes, rows, events) that live until it ends. With
Python's defaults the collector examines the young objects every 700 allocations and, as the
heap grows, walks the whole heap again and again: in a server holding a few large runs that
measured 65–100 ms pauses in the middle of a submit. Nothing here relies on the collector to
free memory promptly (the engine breaks no cycles by hand), so it may run less often.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000  # allocations between young collections (Python's default: 700)
_tuned = False


def tune_garbage_collector() -> None:
    """Collect young objects less often, and keep what exists at start-up (modules, schemas)
    out of every later collection. Done once per process; later calls do nothing."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
