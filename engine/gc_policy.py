"""How often Python's cyclic garbage collector runs in a process that hosts the engine, and
when it does not run at all (``collector_paused``).

A run holds tens of thousands of objects (nodes, rows, events) that live until it ends. With
Python's defaults the collector examines the young objects every 700 allocations and, as the
heap grows, walks the whole heap again and again: in a server holding a few large runs that
measured 65–100 ms pauses in the middle of a submit. Nothing here relies on the collector to
free memory promptly (the engine breaks no cycles by hand), so it may run less often.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 50_000  # allocations between young collections (Python's default: 700)
_tuned = False


def tune_garbage_collector() -> None:
    """Collect young objects less often, and keep what exists at start-up (modules, schemas)
    out of every later collection. Done once per process; later calls do nothing.

    Only the youngest generation is collected first, where the start's garbage is: collecting
    the older ones too walks every object the imports made (~110,000: 20-35 ms of ``serve``'s
    start) to free a few dozen, which stay frozen instead (kilobytes)."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    gc.collect(0)
    freeze_start_up()


def freeze_start_up() -> None:
    """Keep every object that exists now out of later collections (``gc.freeze``) and collect
    young objects every ``YOUNG_THRESHOLD`` allocations from now on; called again, it freezes
    what was made since."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


_pause_lock = threading.Lock()
_pauses = 0
_enable_after = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection while a large document is read and checked (in a worker thread).

    Reading makes millions of short-lived objects, and the collector would walk the heap several
    times meanwhile, each walk holding the GIL for ~0.4 s per megabyte of document: the event
    loop's thread could not run. Reference counting still frees them; any cycle waits for the
    next collection, which finds little left (~30 ms after a 1 MB document). Nested and
    concurrent pauses are counted: the last one to end enables the collector again.
    """
    global _pauses, _enable_after
    with _pause_lock:
        if _pauses == 0:
            _enable_after = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _enable_after:
                gc.enable()
