"""Runs one orchestration: ``Run`` is the engine's handle on it, and wires its parts together.

A task becomes ready when its dependencies are terminal and its stage is open (``readiness``);
ready tasks wait in queues grouped by the pools they need, and ``dispatch`` starts as many as
the pools allow; each start is one attempt (``attempts``; a model step only while its budgets
last, ``budget``), retried as the task's policy says (``retry``) or fanned out into items
(``fanout``); a finished task's state is committed
(``records``) before its dependents are released; once every task has ended the run commits
its end and hands it to the run-end listeners (``finish``). Everything happens on the event
loop thread, so the state (``core``) needs no locks. The run reaches the engine only through
its ``RunServices``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

from multi_task_orchestrator.engine.document.models import Orchestration
from multi_task_orchestrator.engine.run.attempts import Attempts
from multi_task_orchestrator.engine.run.budget import Budgets
from multi_task_orchestrator.engine.run.core import RunCore, holds_slot
from multi_task_orchestrator.engine.run.dispatch import Dispatcher
from multi_task_orchestrator.engine.run.fanout import FanOut
from multi_task_orchestrator.engine.run.finish import Finisher
from multi_task_orchestrator.engine.run.node import Node
from multi_task_orchestrator.engine.run.readiness import Readiness
from multi_task_orchestrator.engine.run.records import Records
from multi_task_orchestrator.engine.run.services import RunServices
from multi_task_orchestrator.engine.run.snapshots import Snapshots
from multi_task_orchestrator.engine.run.table import NodeTable, build_table
from multi_task_orchestrator.engine.state import RunSnapshot, RunStatus, TaskState
from multi_task_orchestrator.engine.store import TaskRow


class Run:
    """One orchestration in this process. Build it with ``await Run.build(...)``."""

    def __init__(
        self,
        services: RunServices,
        orchestration_id: str,
        spec: Orchestration,
        table: NodeTable,
        *,
        created_at: float,
        run_dir: Path,
        idempotency_key: str | None = None,
        source: str | None = None,
        started_at: float | None = None,
        max_parallel: int = 0,
        lease_valid_until: float | None = None,
        durable_starts: bool = False,
    ) -> None:
        """``lease_valid_until``: until when (event loop clock) the run's lease is known held
        (by default: a lease taken now). ``durable_starts``: commit each attempt's start before
        its runner runs (a resumed run whose process may have died of a task)."""
        if lease_valid_until is None:
            lease_valid_until = asyncio.get_running_loop().time() + services.lease_seconds
        self._services = services
        core = self._core = RunCore(
            services,
            orchestration_id,
            spec,
            table,
            created_at=created_at,
            run_dir=run_dir,
            idempotency_key=idempotency_key,
            source=source,
            started_at=started_at,
            max_parallel=max_parallel,
            lease_valid_until=lease_valid_until,
            durable_starts=durable_starts,
        )
        records = self._records = Records(core)
        budgets = self._budgets = Budgets(core, records)
        dispatcher = self._dispatcher = Dispatcher(
            core, records, attempt=self._attempt, released=self._released
        )
        self._snapshots = Snapshots(core, dispatcher.waiting_for, budgets.usage)
        finisher = self._finisher = Finisher(
            core, records, self._snapshots, close=dispatcher.close, ended=self._ended
        )
        readiness = self._readiness = Readiness(
            core, records, dispatcher, FanOut(core, records), finisher
        )
        self._attempts = Attempts(core, records, dispatcher, readiness, budgets)

    @classmethod
    async def build(
        cls, services: RunServices, orchestration_id: str, spec: Orchestration, **options: Any
    ) -> Run:
        """A run of ``spec`` (``options``: as ``Run`` takes them); a large document's nodes are
        built a slice at a time, the event loop running other work in between."""
        slotless = {t.type for t in spec.tasks if not holds_slot(services, t.type)}
        table = await build_table(spec, services.server_pool, slotless)
        return cls(services, orchestration_id, spec, table, **options)

    # --- what the engine reads ------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._core.id

    @property
    def status(self) -> RunStatus:
        return self._core.status

    @property
    def spec(self) -> Orchestration:
        """The document the run runs."""
        return self._core.spec

    @property
    def created_at(self) -> float:
        return self._core.created_at

    @property
    def started_at(self) -> float | None:
        return self._core.started_at

    @property
    def finished(self) -> asyncio.Event:
        """Set once the run's end is published (or it was dropped here)."""
        return self._core.finished

    @property
    def changed(self) -> asyncio.Event:
        """Set whenever a task's state changes (whoever waits for it clears it)."""
        return self._core.changed

    @property
    def taken_over(self) -> bool:
        """Another process took the run over: this one dropped it."""
        return self._core.taken_over

    @property
    def ending(self) -> bool:
        """Every task has ended and the run is committing its end (``finished`` follows)."""
        return self._core.finalizing and not self._core.finished.is_set()

    @property
    def busy(self) -> bool:
        """Attempts hold slots, or bookkeeping (a commit, the run's end) is under way."""
        return bool(self._core.running or self._core.background)

    def background_tasks(self) -> list[asyncio.Task[Any]]:
        """The run's bookkeeping under way (commits, its end)."""
        return list(self._core.background)

    def workers(self) -> list[asyncio.Task[None]]:
        """The attempts under way."""
        return [
            node.worker
            for node in self._core.nodes.values()
            if node.worker is not None and not node.worker.done()
        ]

    def has_task(self, task_id: str) -> bool:
        return task_id in self._core.nodes

    def state_of(self, task_id: str) -> TaskState | None:
        """The task's state now, ahead of what the store has committed; None if it has none."""
        node = self._core.nodes.get(task_id)
        return None if node is None else node.state

    def task_ids(self) -> list[str]:
        """Every task's id (fan-out items included), the document's tasks first."""
        return list(self._core.nodes)

    def nodes_by_state(self) -> dict[TaskState, list[Node]]:
        """Every node, grouped by its state."""
        by_state: dict[TaskState, list[Node]] = {}
        for node in self._core.nodes.values():
            by_state.setdefault(node.state, []).append(node)
        return by_state

    def snapshot(
        self, *, include_outputs: bool = False, load_output_files: bool = True
    ) -> RunSnapshot:
        """The run now (``Snapshots.snapshot``)."""
        return self._snapshots.snapshot(
            include_outputs=include_outputs, load_output_files=load_output_files
        )

    def status_snapshot(
        self, task_ids: set[str], by_state: Mapping[TaskState, list[Node]]
    ) -> RunSnapshot:
        """The run as a status reads it (``Snapshots.status_snapshot``)."""
        return self._snapshots.status_snapshot(task_ids, by_state)

    # --- what the engine does with it -----------------------------------------------------

    async def persist_all(self) -> None:
        """Queue a new run's row and every task's row (``Records.save_new``); ``start`` may
        follow once they are committed."""
        await self._records.save_new()

    def restore(self, rows: list[TaskRow]) -> tuple[int, int]:
        """Apply persisted task rows after a restart; return (kept, to_run_again)."""
        return self._records.restore(rows)

    async def restore_usage(self) -> None:
        """Count what the stored run's attempts used against its budgets (a resumed or
        retried run goes on from there)."""
        if self._core.model_steps:
            self._budgets.restore(await self._services.store.load_attempts(self._core.id))

    def start(self, *, held: bool = False) -> None:
        """Begin (or continue, after restore) running; returns at once. ``held``: the tasks
        ready now are queued (their rows written with the next commit) but nothing is
        dispatched until ``release``."""
        core = self._core
        self._dispatcher.held = held
        now = time.time()
        if core.started_at is None:
            core.started_at = now
        self._records.save_run()
        if core.spec.timeout is not None:
            elapsed = now - core.started_at
            self._finisher.set_timeout(max(0.0, core.spec.timeout - elapsed), self._on_timeout)
        core.open = core.table.arm()
        self._readiness.guarded(self._readiness.release_ready)
        if core.open == 0:
            self._finisher.begin()
        self._dispatcher.kick()

    def release(self) -> None:
        """Dispatch what ``start(held=True)`` queued."""
        self._dispatcher.held = False
        self._dispatcher.kick()

    def kick(self) -> None:
        """Something may start now (a slot came free, the lease was renewed)."""
        self._dispatcher.kick()

    def extend_lease(self, checked_at: float, until: float) -> None:
        """A renewal begun at ``checked_at`` (event loop clock) proved the lease held until
        ``until``; a run that had stopped starting tasks for want of it starts again."""
        core = self._core
        was_lapsed = core.lease_valid_until <= checked_at
        core.lease_valid_until = max(core.lease_valid_until, until)
        if was_lapsed:
            self.kick()

    def cancel(self, reason: str = "cancelled by request") -> None:
        self._readiness.stop("cancel", reason)

    def cancel_task(
        self, task_id: str, reason: str = "cancelled by request"
    ) -> list[asyncio.Task[None]]:
        """Cancel one task (a fan-out: all its items); return the attempts that were under
        way, for the caller to await."""
        node = self._core.nodes[task_id]
        workers = [
            item.worker
            for item in (node, *(node.children or ()))
            if item.worker is not None and not item.worker.done()
        ]
        self._readiness.cancel_node(node, reason)
        return workers

    def drop(self) -> None:
        """Another process took the run over: stop working on it here, writing nothing more;
        whoever waits for it is woken and finds it taken over."""
        self._core.taken_over = True
        self._halt(spare=None)

    def halt(self) -> None:
        """The state database cannot be written: interrupt every attempt (but the one calling)
        and wake whoever waits for the run."""
        self._halt(spare=asyncio.current_task())

    def _halt(self, spare: asyncio.Task[Any] | None) -> None:
        for worker in self.workers():
            if worker is not spare:
                worker.cancel()
        self._core.finished.set()
        self._core.changed.set()

    # --- what its parts call back ---------------------------------------------------------

    def _attempt(self, node: Node) -> Coroutine[Any, Any, None]:
        return self._attempts.execute(node)

    def _released(self) -> None:
        self._services.pool_released(self)

    def _ended(self) -> None:
        self._services.run_finished(self)

    def _on_timeout(self) -> None:
        self._readiness.stop("timeout", f"timed out after {self._core.spec.timeout:g}s")


def make_run_id() -> str:
    """A short, unique, roughly time-ordered id such as ``orch-1a2b3c4d5e``."""
    return f"orch-{int(time.time()) & 0xFFFFF:05x}{random.getrandbits(24):06x}"
