"""Slots a task must hold to start: a concurrency cap, a rate limit, or both.

Rates space starts evenly (``10/s`` means one start every 100 ms): polite to the servers on the
other end, and no window of one period ever holds more than the rate's count.
"""

from __future__ import annotations

import math

from multi_task_orchestrator.engine.document.units import Rate


class Pool:
    """A named pool; ``blocked_until`` says when a task could start in it."""

    __slots__ = ("capacity", "in_use", "interval", "kind", "name", "next_start", "rate")

    def __init__(
        self, name: str, capacity: int | None = None, rate: Rate | None = None, kind: str = "limit"
    ) -> None:
        self.name = name
        self.kind = kind
        self.capacity = capacity
        self.rate = rate
        self.interval = rate.per_seconds / rate.count if rate else 0.0
        self.in_use = 0
        self.next_start = -math.inf

    def blocked_until(self, now: float) -> float | None:
        """None when a slot is free now; the time a rate allows the next start; inf when full."""
        if self.capacity is not None and self.in_use >= self.capacity:
            return math.inf
        if self.interval and now < self.next_start:
            return self.next_start
        return None

    def acquire(self, now: float) -> None:
        self.in_use += 1
        if self.interval:
            self.next_start = max(now, self.next_start) + self.interval

    def release(self) -> None:
        self.in_use -= 1

    def describe(self, blocked_until: float) -> str:
        """What a task waiting on this pool waits for, e.g. ``rate limit api (10/s)``."""
        if blocked_until == math.inf:
            label = {"limit": "limit", "orchestration": "max_concurrent", "server": "server-wide"}
            label_text = label.get(self.kind, self.kind)
            return f"slot in {label_text} {self.name} ({self.capacity} at once)".replace("  ", " ")
        return f"rate limit {self.name} ({self.rate})"
