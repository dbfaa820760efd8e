"""This process's leases on its runs: the heartbeat that renews them (and adopts runs whose
owner died or let its lease lapse), the check a run asks for when it finds its lease past its
known end, and letting go of the runs another process took (fencing)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from multi_task_orchestrator.engine.run import Run
from multi_task_orchestrator.engine.store import Store, StoreError

logger = logging.getLogger("orchestrator.engine")


class LeaseKeeper:
    """Keeps the leases of the runs in ``runs`` (the engine's table of the runs this process
    executes, shared with it): renews them, and drops a run from the table when another process
    took it."""

    def __init__(
        self,
        store: Store,
        runs: dict[str, Run],
        *,
        owner: str,
        lease_seconds: float,
        draining: Callable[[], bool],
        store_failed: Callable[[StoreError], None],
    ) -> None:
        self._store = store
        self._runs = runs
        self._owner = owner
        self._lease_seconds = lease_seconds
        self._draining = draining  # shutting down: adopt nothing more
        self._store_failed = store_failed  # the state database cannot be written
        self._heartbeat: asyncio.Task[None] | None = None
        self._verifying: asyncio.Task[None] | None = None  # a lapsed lease being checked

    def start(self, adopt: Callable[[], Awaitable[object]] | None) -> None:
        """Start renewing; with ``adopt``, each beat also takes over the runs whose owner died
        or whose lease expired (``adopt`` is the engine's resume)."""
        self._heartbeat = asyncio.create_task(self._keep(adopt), name="orchestrator-leases")

    async def stop(self) -> None:
        """Stop the heartbeat and any lease check under way."""
        for beat in (self._heartbeat, self._verifying):
            if beat is not None:
                beat.cancel()
                await asyncio.gather(beat, return_exceptions=True)

    def deadline(self) -> float:
        """Until when a lease taken now holds (wall clock)."""
        return time.time() + self._lease_seconds

    async def _keep(self, adopt: Callable[[], Awaitable[object]] | None) -> None:
        """Renew this engine's leases; drop runs another process took; adopt orphaned ones."""
        interval = max(0.2, self._lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.renew()
                if adopt is not None and not self._draining():
                    await adopt()
            except StoreError as exc:
                if "is busy" in str(exc):
                    logger.warning("could not renew leases: %s", exc)
                else:  # the database cannot be written: stop, as a failed commit does
                    self._store_failed(exc)
                    return

    async def renew(self) -> None:
        """Renew every lease this engine holds; drop the runs another process took. A run's
        lease is known to be held until the renewal's start plus the lease, by this process's
        monotonic clock (a stall of the event loop cannot stretch it): the runs dispatch only
        until then (``Run.extend_lease``)."""
        mine = list(self._runs)
        started = asyncio.get_running_loop().time()
        kept = await self._store.renew(self._owner, mine, time.time() + self._lease_seconds)
        for run_id in mine:
            run = self._runs.get(run_id)
            if run is None:
                continue
            if run_id in kept:
                run.extend_lease(started, started + self._lease_seconds)
            else:
                self._abandon(run_id)

    def lapsed(self) -> None:
        """A run found its lease past its known end (the process stalled): it starts nothing
        until the lease is renewed here, or it is dropped because another process took it."""
        if self._verifying is None or self._verifying.done():
            self._verifying = asyncio.create_task(self._verify(), name="orchestrator-lease-check")

    async def _verify(self) -> None:
        try:
            await self.renew()
        except StoreError as exc:  # the heartbeat tries again (and reports a broken store)
            logger.warning("could not check leases: %s", exc)

    def fenced(self, run_ids: set[str]) -> None:
        """The store found these runs held by another process (``Store.on_fenced``)."""
        for run_id in run_ids:
            self._abandon(run_id)

    def _abandon(self, run_id: str) -> None:
        """Another process holds this run now: stop working on it here, writing nothing
        more; whoever waits for it here is woken, and finds it taken over (``wait``)."""
        self._store.let_go(run_id)
        run = self._runs.pop(run_id, None)
        if run is None:
            return
        logger.warning(
            "orchestration %s was taken over by another process (this one stopped renewing its "
            "lease in time); it is dropped here and finishes there",
            run_id,
        )
        run.drop()
