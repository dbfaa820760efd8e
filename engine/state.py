"""States of tasks and orchestrations, and the snapshots that status, results and reports read."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from multi_task_orchestrator.engine.usage import RunUsage


class TaskState(StrEnum):
    pending = "pending"  # waiting for dependencies or its stage
    queued = "queued"  # ready, waiting for a slot or a rate limit
    running = "running"
    retrying = "retrying"  # failed an attempt, waiting for the next one
    succeeded = "succeeded"
    failed = "failed"
    skipped = "skipped"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_TASK_STATES


TERMINAL_TASK_STATES = frozenset(
    {TaskState.succeeded, TaskState.failed, TaskState.skipped, TaskState.cancelled}
)


class RunStatus(StrEnum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"  # every task succeeded
    failed = "failed"  # at least one task failed, was skipped or was cancelled
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in {RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled}


class ApprovalView(BaseModel):
    """An ``approval`` task's request, and the decision on it once one is made."""

    message: str
    requested_at: float
    deadline: float | None = Field(None, description="when its timeout decides; None: never")
    decision: str | None = Field(None, description="approved | rejected; None while it waits")
    note: str | None = None
    decided_by: str | None = Field(None, description="'cli', 'mcp', 'api' or 'timeout'")
    decided_at: float | None = None


class TaskSnapshot(BaseModel):
    """One task as status and reports see it."""

    task_id: str
    label: str
    type: str
    state: TaskState
    position: int = Field(description="document order; fan-out children follow their parent")
    parent_id: str | None = None
    attempts: int = 0
    max_attempts: int = 1
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    error_class: str | None = None
    reason: str | None = Field(None, description="why it was skipped or cancelled")
    chain: list[str] = Field(default_factory=list, description="from this task to the root cause")
    waiting_for: str | None = Field(None, description="what a queued task waits for")
    output: Any = None
    has_output: bool = False
    approval: ApprovalView | None = Field(
        None,
        description="an approval task's request and decision, once it asked; None (and left "
        "out of a dump) otherwise",
        exclude_if=lambda value: value is None,
    )

    @property
    def awaits_approval(self) -> bool:
        """Running, and waiting for a person's decision."""
        return (
            self.state is TaskState.running
            and self.approval is not None
            and self.approval.decision is None
        )

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)


class RunSnapshot(BaseModel):
    """A whole orchestration at one moment."""

    id: str
    name: str
    status: RunStatus
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    max_parallel: int = Field(0, description="the most tasks that ran at once")
    run_dir: str | None = None
    tasks: list[TaskSnapshot] = Field(default_factory=list)
    task_counts: dict[str, int] | None = Field(
        None,
        description="the number of tasks in each state, counted over the whole run, when "
        "`tasks` holds only some of them (a status read, see Engine.status); None when `tasks` "
        "is every task",
    )
    fan_outs_running: int | None = Field(
        None,
        description="how many of the tasks counted running are fan-outs whose items run (each "
        "item is counted too), when `tasks` holds only some of them; None when `tasks` is every "
        "task (they are counted from it)",
    )
    usage: RunUsage | None = Field(
        None,
        description="what the model calls used, with the budget; None (and left out of a dump) "
        "for a run without model steps",
        exclude_if=lambda value: value is None,
    )

    @property
    def partial(self) -> bool:
        """True when ``tasks`` holds only some of the run's tasks (``task_counts`` has them all)."""
        return self.task_counts is not None

    @property
    def total(self) -> int:
        """How many tasks the run has, whether or not ``tasks`` holds them all."""
        if self.task_counts is None:
            return len(self.tasks)
        return sum(self.task_counts.values())

    def counts(self) -> dict[str, int]:
        counts = {state.value: 0 for state in TaskState}
        if self.task_counts is not None:
            for state, number in self.task_counts.items():
                counts[TaskState(state).value] += number
            return counts
        for task in self.tasks:
            counts[task.state.value] += 1
        return counts

    def running_tasks(self) -> int:
        """How many tasks are running themselves: a fan-out whose items run is not counted,
        its items are (``counts()`` has it under running, as its state is)."""
        running = self.counts()[TaskState.running.value]
        if self.fan_outs_running is not None:
            return max(0, running - self.fan_outs_running)
        parents = {task.parent_id for task in self.tasks if task.parent_id is not None}
        fan_outs = sum(
            1 for task in self.tasks if task.state is TaskState.running and task.task_id in parents
        )
        return running - fan_outs

    @property
    def done(self) -> int:
        if self.task_counts is not None:
            return sum(n for state, n in self.task_counts.items() if TaskState(state).terminal)
        return sum(1 for task in self.tasks if task.state.terminal)

    @property
    def percent(self) -> float:
        total = self.total
        return 100.0 * self.done / total if total else 100.0

    def elapsed(self, now: float) -> float:
        if self.started_at is None:
            return 0.0
        return max(0.0, (self.finished_at or now) - self.started_at)


class EventRecord(BaseModel):
    """One line of an orchestration's append-only event log."""

    seq: int
    ts: float
    task_id: str | None = None
    kind: str = Field(description="e.g. submitted, started, succeeded, failed, retrying, log")
    level: str = "info"
    message: str
    data: dict[str, Any] | None = None
