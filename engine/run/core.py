"""What every part of one running orchestration reads and changes: who it is, the services it
uses, its node table, its status, and whether it is stopping.

The parts of a run (dispatch, attempts, readiness, records, snapshots, finishing) each hold
this one ``RunCore``; it holds none of them. Everything happens on the event loop thread, so
nothing here needs a lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multi_task_orchestrator.engine import outputs, registry
from multi_task_orchestrator.engine.document.models import Orchestration
from multi_task_orchestrator.engine.run.node import Node
from multi_task_orchestrator.engine.run.services import RunServices
from multi_task_orchestrator.engine.run.table import NodeTable
from multi_task_orchestrator.engine.state import RunStatus

if TYPE_CHECKING:
    from multi_task_orchestrator.engine.runners.base import Runner


def _declared(services: RunServices, task_type: str) -> Runner[Any] | type[Runner[Any]] | None:
    """The runner of ``task_type``, or for a type this engine leaves off (a stored run's) its
    class, whose declarations are the same; None for a type nobody knows."""
    try:
        return services.runner(task_type)
    except KeyError:
        return registry.runner_classes().get(task_type)


def spends_budget(services: RunServices, task_type: str) -> bool:
    """Whether tasks of ``task_type`` are model steps (their runner says so)."""
    runner = _declared(services, task_type)
    return runner is not None and runner.spends_budget


def holds_slot(services: RunServices, task_type: str) -> bool:
    """Whether a running task of ``task_type`` holds a slot of its pools (its runner says)."""
    runner = _declared(services, task_type)
    return runner is None or runner.holds_slot


STOP_REASONS = {
    "cancel": "orchestration cancelled",
    "abort": "orchestration aborted",
    "timeout": "orchestration timed out",
}


class RunCore:
    """The state one run's parts share."""

    def __init__(
        self,
        services: RunServices,
        orchestration_id: str,
        spec: Orchestration,
        table: NodeTable,
        *,
        created_at: float,
        run_dir: Path,
        idempotency_key: str | None,
        source: str | None,
        started_at: float | None,
        max_parallel: int,
        lease_valid_until: float,
        durable_starts: bool,
    ) -> None:
        self.services = services
        self.id = orchestration_id
        self.spec = spec
        self.table = table
        self.nodes = table.nodes
        self.created_at = created_at
        self.run_dir = run_dir
        self.idempotency_key = idempotency_key
        self.source = source
        self.status = RunStatus.running
        self.started_at = started_at
        self.finished_at: float | None = None
        self.error: str | None = None
        self.max_parallel = max_parallel
        self.running = 0  # attempts holding their slots
        self.open = 0  # nodes not ended
        self.stopping: str | None = None  # "cancel" | "abort" | "timeout"
        self.finalizing = False  # every task ended: the run is committing its end
        # Until when (event loop clock) this process knows it holds the run's lease; nothing
        # starts after it unless a renewal proves the lease still held.
        self.lease_valid_until = lease_valid_until
        self.taken_over = False  # another process took the run over: this one is dropped
        self.durable_starts = durable_starts  # commit each attempt's start before it runs
        self.finished = asyncio.Event()
        self.changed = asyncio.Event()
        self.background: set[asyncio.Task[Any]] = set()
        # whether any task is a model step (its runner spends budget): usage is shown then
        self.model_steps = any(
            spends_budget(services, task_type) for task_type in {t.type for t in spec.tasks}
        )

    def stored_budget(self) -> dict[str, Any] | None:
        """What the run's row keeps of its budget: None for a run without model steps, else
        the budget's limits (``{}`` when it has none)."""
        if not self.model_steps:
            return None
        return self.spec.budget.limits() if self.spec.budget else {}

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run bookkeeping in the background; the engine waits for it before closing."""
        background = asyncio.get_running_loop().create_task(work)
        self.background.add(background)
        background.add_done_callback(self.background.discard)

    def output_of(self, node: Node) -> Any:
        """A finished task's output, read from its file when it was too large to keep."""
        if node.output is not None or node.output_json is None:
            return node.output
        return outputs.load(node.output_json, self.run_dir)

    def keep_output(self, node: Node, output_json: str | bytes) -> str:
        """``output_json`` as held: itself, or a reference to the file a large one went to."""
        threshold = self.services.output_threshold
        return outputs.keep(output_json, self.run_dir, node.task_id, threshold)

    def stop_reason(self) -> str:
        """Why a task that the run's stop ended was cancelled."""
        if self.stopping == "cancel" and self.error:
            return self.error
        return STOP_REASONS.get(self.stopping or "", "orchestration stopped")
