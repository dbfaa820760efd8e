"""How a run ends: its final status and the error it reports, from its tasks' states; then
committing that end, handing the run to the run-end listeners and publishing it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable

from multi_task_orchestrator.engine.run.core import RunCore
from multi_task_orchestrator.engine.run.node import Node
from multi_task_orchestrator.engine.run.records import Records
from multi_task_orchestrator.engine.run.snapshots import Snapshots
from multi_task_orchestrator.engine.run_end import RunEnd
from multi_task_orchestrator.engine.state import RunStatus, TaskState
from multi_task_orchestrator.engine.store import StoreError

logger = logging.getLogger("orchestrator.scheduler")


def run_outcome(
    nodes: Collection[Node],
    ordered: Callable[[], Iterable[Node]],
    stopping: str | None,
    error: str | None,
) -> tuple[RunStatus, str | None]:
    """The run's final state, and its error. ``ordered`` gives the nodes in display order
    (only asked for when tasks were cancelled); ``stopping`` is how the run was stopped, if it
    was."""
    states = {node.state for node in nodes}
    if stopping == "cancel":
        return RunStatus.cancelled, error
    if states <= {TaskState.succeeded} and not stopping:
        return RunStatus.succeeded, error
    if error is None and TaskState.cancelled in states:
        return RunStatus.failed, cancelled_tasks(ordered())
    return RunStatus.failed, error


def cancelled_tasks(ordered: Iterable[Node]) -> str | None:
    """What a run some of whose tasks were cancelled (the run itself was not) says, e.g.
    ``task long was cancelled (cancelled by request)``."""
    cancelled = [
        node for node in ordered if node.state == TaskState.cancelled and not node.children
    ]
    if not cancelled:
        return None
    reason = f" ({cancelled[0].reason})" if cancelled[0].reason else ""
    if len(cancelled) == 1:
        return f"task {cancelled[0].task_id} was cancelled{reason}"
    names = ", ".join(node.task_id for node in cancelled[:5])
    more = f" and {len(cancelled) - 5} more" if len(cancelled) > 5 else ""
    return f"{len(cancelled)} tasks were cancelled: {names}{more}{reason}"


class Finisher:
    """Ends one run once every task has: commits it, hands it to the run-end listeners (the
    default one writes its files), then publishes the end."""

    def __init__(
        self,
        core: RunCore,
        records: Records,
        snapshots: Snapshots,
        *,
        close: Callable[[], None],
        ended: Callable[[], None],
    ) -> None:
        self._core = core
        self._records = records
        self._snapshots = snapshots
        self._close = close  # no more wake-ups of the dispatcher
        self._ended = ended  # the end is published: the engine lets the run go
        self._timeout_handle: asyncio.TimerHandle | None = None

    def set_timeout(self, delay: float, on_timeout: Callable[[], None]) -> None:
        """Call ``on_timeout`` in ``delay`` seconds, unless the run has ended by then."""
        self._timeout_handle = asyncio.get_running_loop().call_later(delay, on_timeout)

    def begin(self) -> None:
        """Every task ended: end the run (once)."""
        if self._core.finalizing:
            return
        self._core.finalizing = True
        self._core.spawn(self._finalize())

    async def _finalize(self) -> None:
        """End the run: commit everything, write its files, then publish the end.

        Until the last step the run reads as running everywhere (in memory and in the
        database): its terminal state is committed, and it leaves ``engine.runs`` and wakes
        its waiters, only once nothing is left to do. So the moment any tool says it finished,
        every tool agrees (a retry is accepted, a cancel refused).
        """
        core = self._core
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        self._close()
        if core.taken_over:
            return  # the process that took it over ends it
        status, error = run_outcome(
            core.nodes.values(), core.table.ordered, core.stopping, core.error
        )
        finished_at = time.time()
        store = core.services.store
        took = finished_at - (core.started_at or core.created_at)
        self._records.event(None, "finished", f"{status.value} in {took:.2f}s")
        end: RunEnd | None = None
        try:
            await store.flush()
            if core.taken_over:  # that flush was refused: another process owns the run now
                return
            try:
                if listeners := core.services.run_end_listeners:
                    end = self._end(status, error, finished_at)
                    for listener in listeners:
                        await listener(end)
            except StoreError:
                raise
            except (OSError, ValueError) as exc:  # the run's outcome still counts
                logger.error("orchestration %s: could not write its files: %s", core.id, exc)
                self._records.event(
                    None, "files", f"could not write the run's files: {exc}", "error"
                )
            except Exception as exc:  # a listener's bug must not leave the run unfinished
                logger.exception("orchestration %s: a run-end listener failed", core.id)
                self._records.event(
                    None,
                    "files",
                    f"a run-end listener failed: {type(exc).__name__}: {exc}",
                    "error",
                )
            core.status, core.error, core.finished_at = status, error, finished_at
            self._records.save_run()
            await store.flush()
        except StoreError as exc:
            end = None  # nothing more is written
            core.services.store_failed(exc)
        finally:
            core.status, core.error, core.finished_at = status, error, finished_at
            if end is not None:
                self._snapshots.final = end.snapshot  # what the run's waiters are handed
            self._ended()
            core.finished.set()
            core.changed.set()
        if end is not None:
            for work in end.after:
                core.services.after_end(core.id, work)
            core.table.release()  # its waiters are handed the snapshot: nothing reads them now

    def _end(self, status: RunStatus, error: str | None, finished_at: float) -> RunEnd:
        """The run as it ends, for the engine's run-end listeners (the default one writes the
        result files, and leaves the report for after the end is published)."""
        core = self._core
        snapshot = self._snapshots.snapshot().model_copy(
            update={"status": status, "error": error, "finished_at": finished_at}
        )
        return RunEnd(
            snapshot=snapshot,
            outputs=self._snapshots.held_outputs(),
            store=core.services.store,
            run_dir=core.run_dir,
            dependencies={task.id: task.dependencies for task in core.spec.tasks},
            stages=[core.table.stage_ids(stage) for stage in core.table.stage_keys],
            spec=core.spec,
        )
