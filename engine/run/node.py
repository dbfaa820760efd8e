"""The scheduler's record of one task (or one fan-out child): its place in the graph, its state,
its attempts and what it holds while it runs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from multi_task_orchestrator.engine.document.models import RetryPolicy, TaskSpec
from multi_task_orchestrator.engine.pools import Pool
from multi_task_orchestrator.engine.state import TaskState

MAX_ITEM_LABEL = 40


@dataclass(eq=False, slots=True)
class Node:
    """One task (or one fan-out child) and everything the scheduler knows about it."""

    spec: TaskSpec
    task_id: str
    position: int
    stage: int = 0
    parent: Node | None = None
    item: Any = None
    index: int | None = None
    # tuples, the empty one shared: a run holds a node per task, most with few links
    deps: tuple[Node, ...] = ()
    dependents: tuple[Node, ...] = ()
    children: list[Node] | None = None
    children_open: int = 0
    waiting: int = 0
    pools: tuple[Pool, ...] = ()
    retry: RetryPolicy | None = None
    state: TaskState = TaskState.pending
    attempts: int = 0
    uncounted_attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    output: Any = None
    output_json: str | None = None
    error: str | None = None
    error_class: str | None = None
    reason: str | None = None
    chain: Sequence[str] = ()  # the skips back to the task that started them, if skipped
    root_error: str | None = None
    cancel_reason: str | None = None
    waiting_note: str | None = None  # what a running task's runner waits for
    queued_at: float | None = None  # when the current attempt became ready to run
    wait_reason: str | None = None  # the first pool that kept it waiting, if one did
    worker: asyncio.Task[None] | None = None
    executing: bool = False
    held: tuple[Pool, ...] = ()
    retry_handle: asyncio.TimerHandle | None = None
    fanout_pool: Pool | None = None

    @property
    def max_attempts(self) -> int:
        """Attempts allowed. Attempts cut short by a restart, or made before a retry of the
        whole orchestration, do not count against the task's budget."""
        return (self.retry.max_attempts if self.retry else 1) + self.uncounted_attempts

    @property
    def type(self) -> str:
        return self.spec.type

    @property
    def parent_id(self) -> str | None:
        return self.parent.task_id if self.parent is not None else None

    @property
    def label(self) -> str:
        """The display name; a fan-out child shows its item when that is a short name."""
        base = self.spec.label
        if self.parent is None:
            return base
        item = self.item
        if isinstance(item, str) and 0 < len(item) <= MAX_ITEM_LABEL and "\n" not in item:
            return f"{base}[{item}]"
        return f"{base}[{self.index}]"


def held_output(node: Node) -> Any:
    """The output as held: the value, or the reference to the file a large one went to."""
    if node.output is not None or node.output_json is None:
        return node.output
    return json.loads(node.output_json)


def make_child(parent: Node, index: int, item: Any) -> Node:
    """The child of ``parent`` for its ``index``-th item (not yet known to the run)."""
    return Node(
        spec=parent.spec,
        task_id=f"{parent.task_id}[{index}]",
        position=parent.position + index + 1,
        stage=parent.stage,
        parent=parent,
        item=item,
        index=index,
        pools=parent.pools,
        retry=parent.retry,
    )
