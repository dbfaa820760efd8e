"""The firing loop: starts each schedule's runs when they are due, inside ``orchestrator
serve``.

Each pass reads the due schedules from the state database, so schedules another process added
(the CLI) are seen within ``POLL_SECONDS``. A fire is claimed with a compare-and-swap of the
schedule's next fire time, so when several servers share one database exactly one of them
handles it; the run is also submitted with the idempotency key ``schedule:ID:DUE`` as a second
guard. A fire more than ``GRACE_SECONDS`` late (the server was down, or the machine slept) is
*missed* and handled by the schedule's catch-up policy: ``skip`` advances to the next fire after
now, ``run_once`` runs once now and then advances; never a burst. The clock (``now``,
``sleep``) is injectable, so tests move time instead of waiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from multi_task_orchestrator.engine.facade_errors import UnknownOrchestration
from multi_task_orchestrator.engine.issues import DocumentError
from multi_task_orchestrator.engine.run_end import RunEnd
from multi_task_orchestrator.engine.schedules.timing import next_fire
from multi_task_orchestrator.engine.store import ScheduleRow

if TYPE_CHECKING:
    from multi_task_orchestrator.engine.engine import Engine

POLL_SECONDS = 5.0  # the longest the loop sleeps: how soon it sees schedules added elsewhere
GRACE_SECONDS = 60.0  # a fire later than this is missed (catch-up policy)
STOP_WAIT = 10.0  # seconds ``aclose`` lets a pass under way finish

logger = logging.getLogger("orchestrator.schedules")

Outcome = Literal["started", "skipped", "queued", "missed", "error"]


@dataclass(frozen=True, slots=True)
class Fire:
    """What one due fire of a schedule came to."""

    schedule_id: str
    due: float
    outcome: Outcome
    run_id: str | None = None
    detail: str = ""


class ScheduleFirer:
    """Fires the schedules of ``engine``'s database; ``start`` the loop, ``aclose`` it, or call
    ``tick`` for one pass (the tests)."""

    def __init__(
        self,
        engine: Engine,
        *,
        now: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        poll_seconds: float = POLL_SECONDS,
        grace_seconds: float = GRACE_SECONDS,
    ) -> None:
        self._engine = engine
        self._store = engine.store
        self._now = now
        self._sleep = sleep
        self._poll = poll_seconds
        self._grace = grace_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        """Run the loop in the background; a run ending wakes it (a queued fire may start)."""
        if self._task is None:
            self._engine.add_run_end_listener(self._run_ended)
            self._task = asyncio.create_task(self._loop(), name="orchestrator-schedules")

    async def aclose(self) -> None:
        """Stop the loop: a pass under way may finish (a run half-started is not left behind),
        for up to ``STOP_WAIT`` seconds; a pause is cut short."""
        task, self._task = self._task, None
        if task is None:
            return
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_WAIT)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run_ended(self, _: RunEnd) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while not self._closing:
            try:
                await self.tick()
                upcoming = await self._store.next_fire()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must outlive a bad pass (a busy or full disk, say)
                logger.exception("the schedules could not be fired; trying again shortly")
                upcoming = None
            now = self._now()
            delay = self._poll if upcoming is None else min(self._poll, upcoming - now)
            await self._pause(max(delay, 0.0))

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` or until a run ends (or ``aclose``), whichever comes first."""
        if self._closing:
            return
        self._wake.clear()
        sleeping = asyncio.ensure_future(self._sleep(seconds))
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (sleeping, woken):
                waiter.cancel()

    async def tick(self) -> list[Fire]:
        """Handle every fire due now (and queued fires whose previous run ended)."""
        if self._engine.draining or self._closing:
            return []
        fires: list[Fire] = []
        for row in await self._store.due_schedules(self._now()):
            try:
                fire = await self._handle(row)
            except Exception as exc:
                logger.exception("schedule %s (%s) could not be fired", row.id, row.name)
                fire = await self._failed(row, exc)
            if fire is not None:
                fires.append(fire)
        return fires

    async def _failed(self, row: ScheduleRow, error: Exception) -> Fire:
        """Record why a fire failed; one that failed before it was claimed is tried again
        after ``poll_seconds``, not at once (the loop would spin on it)."""
        due = row.next_fire_at or 0.0
        await self._store.record_schedule_error(row.id, f"{type(error).__name__}: {error}")
        if row.next_fire_at is not None and row.next_fire_at <= self._now():
            await self._store.claim_fire(row.id, row.next_fire_at, self._now() + self._poll)
        return Fire(row.id, due, "error", detail=str(error))

    async def _handle(self, row: ScheduleRow) -> Fire | None:
        now = self._now()
        queued = row.queued_at
        if (
            queued is not None
            and not await self._previous_running(row)
            and await self._store.take_queued(row.id, queued)
        ):
            return await self._fire(row, queued)
        if row.next_fire_at is None or row.next_fire_at > now:
            return None
        due = row.next_fire_at
        upcoming = next_fire(
            cron=row.cron,
            every=row.every,
            zone=row.timezone,
            created_at=row.created_at,
            after=max(now, due),
        )
        if not await self._store.claim_fire(row.id, due, upcoming):
            return None  # another server took this fire
        if now - due > self._grace:
            if row.catch_up == "skip":
                await self._store.record_skip(row.id)
                logger.info(
                    "schedule %s (%s): missed the fire due %.0f s ago; skipped",
                    row.id,
                    row.name,
                    now - due,
                )
                return Fire(row.id, due, "missed")
            logger.info(
                "schedule %s (%s): missed the fire due %.0f s ago; running it once now",
                row.id,
                row.name,
                now - due,
            )
        if row.overlap != "allow" and await self._previous_running(row):
            if row.overlap == "queue" and await self._store.queue_fire(row.id, due):
                return Fire(row.id, due, "queued", row.last_run_id)
            await self._store.record_skip(row.id)
            logger.info(
                "schedule %s (%s): run %s is still going; this fire is skipped",
                row.id,
                row.name,
                row.last_run_id,
            )
            return Fire(row.id, due, "skipped", row.last_run_id)
        return await self._fire(row, due)

    async def _previous_running(self, row: ScheduleRow) -> bool:
        if row.last_run_id is None:
            return False
        try:
            status = await self._engine.run_status(row.last_run_id)
        except UnknownOrchestration:
            return False
        return not status.terminal

    async def _fire(self, row: ScheduleRow, due: float) -> Fire:
        """Start the schedule's run for the fire at ``due``; a document this server cannot run
        (a task type disabled since, a secret gone) is recorded on the schedule instead."""
        try:
            run_id = await self._engine.submit(
                row.document,
                extra_vars=row.vars,
                idempotency_key=f"schedule:{row.id}:{due:.3f}",
                source_name=f"schedule:{row.id}",
            )
        except DocumentError as exc:
            problems = "; ".join(str(issue) for issue in exc.issues)
            error = f"the document no longer validates: {problems}"
            await self._store.record_schedule_error(row.id, error)
            logger.warning("schedule %s (%s) did not fire: %s", row.id, row.name, error)
            return Fire(row.id, due, "error", detail=error)
        await self._store.record_fire(row.id, self._now(), run_id)
        logger.info("schedule %s (%s) started %s", row.id, row.name, run_id)
        return Fire(row.id, due, "started", run_id)
