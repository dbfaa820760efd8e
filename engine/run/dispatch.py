"""Dispatch: ready tasks wait in queues grouped by the pools they need, ordered by (higher
priority, document order); whenever something changes, ``dispatch`` starts as many as the
pools allow, and wakes itself when a rate limit lets the next one start."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any

from multi_task_orchestrator.engine.pools import Pool
from multi_task_orchestrator.engine.run.core import RunCore
from multi_task_orchestrator.engine.run.node import Node
from multi_task_orchestrator.engine.run.records import Records
from multi_task_orchestrator.engine.state import TaskState

WAIT_NOTICED = 0.002  # seconds in the queue before a task counts as having waited

Attempt = Callable[[Node], Coroutine[Any, Any, None]]


class Dispatcher:
    """One run's queues and the slots its running attempts hold."""

    def __init__(
        self,
        core: RunCore,
        records: Records,
        *,
        attempt: Attempt,
        released: Callable[[], None],
    ) -> None:
        self._core = core
        self._records = records
        self._attempt = attempt  # runs one attempt of a dispatched task
        self._released = released  # a slot came free: other runs may start something
        self._queues: dict[tuple[int, ...], tuple[tuple[Pool, ...], list[Any]]] = {}
        self._queue_blocked_by: dict[tuple[int, ...], str | None] = {}  # last reason per queue
        self._counter = itertools.count()
        self._pending = False
        self._wake_at = math.inf
        self._wake_handle: asyncio.TimerHandle | None = None
        self.held = False  # a new run's tasks wait for its first commit (``Run.start``)

    def enqueue(self, node: Node) -> None:
        """``node`` is ready to run: queue it and dispatch soon."""
        node.state = TaskState.queued
        node.queued_at = time.time()
        node.wait_reason = None
        self._records.persist(node)
        self._push(node)
        self.kick()

    def _push(self, node: Node) -> None:
        pools = node.pools + (
            (node.parent.fanout_pool,) if node.parent and node.parent.fanout_pool else ()
        )
        key = _queue_key(pools)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = (pools, [])
        heapq.heappush(queue[1], (-node.spec.priority, node.position, next(self._counter), node))

    def kick(self) -> None:
        """Dispatch once the current callback returns (however many ask before then)."""
        if not self._pending:
            self._pending = True
            asyncio.get_running_loop().call_soon(self.dispatch)

    def dispatch(self) -> None:
        """Start as many queued tasks as their pools allow, best first."""
        self._pending = False
        core = self._core
        if self.held or core.services.draining() or core.taken_over:
            return  # held, or shutting down: what runs may finish, nothing new starts
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now >= core.lease_valid_until:
            core.services.lease_lapsed()  # kicks this run again once the lease is renewed
            return
        wake_at = math.inf
        while True:
            best: tuple[Any, ...] | None = None
            best_queue: list[Any] | None = None
            best_pools: tuple[Pool, ...] = ()
            for key, (pools, queue) in self._queues.items():
                while queue and queue[0][3].state != TaskState.queued:
                    heapq.heappop(queue)  # cancelled while it waited
                if not queue:
                    continue
                blocked = max(
                    (pool.blocked_until(now) or -math.inf for pool in pools), default=-math.inf
                )
                if blocked != -math.inf:
                    wake_at = min(wake_at, blocked)
                    # every task behind this head waits for the same thing; it learns the
                    # reason when it starts (_queue_blocked_by), without walking the queue now
                    self._queue_blocked_by[key] = self.waiting_for(queue[0][3], now)
                    continue
                if best is None or queue[0][:3] < best[:3]:
                    best, best_queue, best_pools = queue[0], queue, pools
            if best is None or best_queue is None:
                break
            heapq.heappop(best_queue)
            for pool in best_pools:
                pool.acquire(now)
            node = best[3]
            waited = node.queued_at is not None and time.time() - node.queued_at > WAIT_NOTICED
            if node.wait_reason is None and waited:
                node.wait_reason = self._queue_blocked_by.get(_queue_key(best_pools))
            node.state = TaskState.running
            node.held = best_pools
            if best_pools:  # a task that holds no slot (an approval waiting) is not counted
                core.running += 1
                core.max_parallel = max(core.max_parallel, core.running)
            node.worker = asyncio.create_task(self._attempt(node))
        if wake_at != math.inf and wake_at < self._wake_at:
            if self._wake_handle is not None:
                self._wake_handle.cancel()
            self._wake_at = wake_at
            self._wake_handle = loop.call_at(wake_at, self._on_wake)

    def _on_wake(self) -> None:
        self._wake_at = math.inf
        self._wake_handle = None
        self.dispatch()

    def waiting_for(self, node: Node, now: float | None = None) -> str | None:
        """What a task waits for, e.g. ``rate limit api (10/s)`` or a host's slot, at ``now``
        (the event loop's clock; by default the present: a dispatch passes the moment it found
        the task's pools blocked, which a moment later they may no longer be)."""
        if node.state == TaskState.running:
            return node.waiting_note
        if node.state != TaskState.queued:
            return None
        if now is None:
            now = asyncio.get_running_loop().time()
        pools = node.pools + (
            (node.parent.fanout_pool,) if node.parent and node.parent.fanout_pool else ()
        )
        for pool in pools:
            blocked = pool.blocked_until(now)
            if blocked is not None:
                return pool.describe(blocked)
        return None

    def release(self, node: Node) -> None:
        """The attempt of ``node`` stopped: give back the slots it held."""
        node.executing = False
        if not node.held:
            return
        self._core.running -= 1
        for pool in node.held:
            pool.release()
        node.held = ()
        self._released()
        self.kick()

    def undispatch(self, node: Node) -> None:
        """Put a task dispatched but not started back in its queue (the lease lapsed)."""
        node.worker = None
        self.release(node)
        node.state = TaskState.queued
        self._push(node)
        self._core.services.lease_lapsed()

    def close(self) -> None:
        """The run ends: no more wake-ups."""
        if self._wake_handle is not None:
            self._wake_handle.cancel()


def _queue_key(pools: tuple[Pool, ...]) -> tuple[int, ...]:
    return tuple(id(pool) for pool in pools)
