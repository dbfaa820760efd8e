"""Work a run's end leaves running once the end is published — ``report.html``, which nothing
that says "finished" waits for — tracked per run, so a reader of the run's files can wait for
it (``settled``) and the engine finishes it before it closes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger("orchestrator.run_end")

AfterEndWork = Callable[[], Awaitable[None]]


class AfterEnd:
    """The work left by the ends of this process's runs, by run id."""

    def __init__(self) -> None:
        self._work: dict[str, set[asyncio.Task[None]]] = {}

    def start(self, orchestration_id: str, work: AfterEndWork) -> None:
        """Run ``work()`` in the background; a failure is logged (the run's outcome stands)."""
        task = asyncio.get_running_loop().create_task(self._logged(orchestration_id, work))
        tasks = self._work.setdefault(orchestration_id, set())
        tasks.add(task)
        task.add_done_callback(lambda done: self._forget(orchestration_id, done))

    def _forget(self, orchestration_id: str, task: asyncio.Task[None]) -> None:
        tasks = self._work.get(orchestration_id)
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                del self._work[orchestration_id]

    async def settled(self, orchestration_id: str) -> None:
        """Return once the work the run's end left (if any) is done."""
        while tasks := self._work.get(orchestration_id):
            await asyncio.wait(tasks)

    async def aclose(self) -> None:
        """Finish all of it (the engine closes its store next)."""
        while self._work:
            await asyncio.wait({task for tasks in self._work.values() for task in tasks})

    @staticmethod
    async def _logged(orchestration_id: str, work: AfterEndWork) -> None:
        try:
            await work()
        except Exception:  # a report that cannot be written must not crash the engine
            logger.exception("orchestration %s: writing its report failed", orchestration_id)
