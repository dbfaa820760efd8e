"""What a run needs from outside itself, and nothing more: the engine builds one ``RunServices``
and hands it to every run, so a run never sees the engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from multi_task_orchestrator.engine.after_end import AfterEndWork
from multi_task_orchestrator.engine.backends import Backend
from multi_task_orchestrator.engine.network import Network
from multi_task_orchestrator.engine.pools import Pool
from multi_task_orchestrator.engine.run_end import RunEndListener
from multi_task_orchestrator.engine.runners.base import Runner
from multi_task_orchestrator.engine.secrets import SecretResolver
from multi_task_orchestrator.engine.store import Store, StoreError

if TYPE_CHECKING:  # the run never imports the notifications (nor the reports they use)
    from multi_task_orchestrator.engine.approvals import ApprovalDesk
    from multi_task_orchestrator.engine.notify.delivery import Notifier


class RunHandle(Protocol):
    """A run as the services' callbacks see it: which one it is, and how to wake it."""

    @property
    def id(self) -> str: ...

    def kick(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RunServices:
    """The engine's side of every run of this process.

    The callables read the engine as it is when they are called (``draining`` turns true at
    shutdown; ``run_end_listeners`` is the engine's own list, so a listener added later is
    awaited too).
    """

    store: Store
    runner: Callable[[str], Runner]  # the runner of a task type
    backend: Backend
    secrets: SecretResolver
    redact: Callable[[str], str]
    redact_data: Callable[[Any], Any]
    resources: dict[str, Any]
    network: Network
    workspace: Path
    server_pool: Pool  # slots shared by every run of this process
    max_fanout: int  # items one fan-out may have
    output_threshold: int  # larger outputs are kept as files
    owner: str  # who holds the runs' leases
    owner_process: str
    lease_seconds: float
    lease_deadline: Callable[[], float]  # until when a lease taken now holds (wall clock)
    draining: Callable[[], bool]  # shutting down: nothing new starts
    lease_lapsed: Callable[[], None]  # a run found its lease past its known end: check it
    pool_released: Callable[[RunHandle], None]  # a slot came free: other runs may start work
    store_failed: Callable[[StoreError], None]  # the state database cannot be written
    run_finished: Callable[[RunHandle], None]  # the run's end is committed and published
    run_end_listeners: Sequence[RunEndListener]
    # run this work of the run's end once the end is published (``RunEnd.after``)
    after_end: Callable[[str, AfterEndWork], None]
    notifier: Notifier | None = None  # sends task_failed notifications (run ends: a listener)
    approvals: ApprovalDesk | None = None  # where approval tasks wait for a person
