"""Fan-out: a task's items (from ``for_each`` or its runner), one tracked child per item, and
what the task comes to once every item has ended."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from multi_task_orchestrator.engine import outputs
from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.expressions import ExpressionError, resolve
from multi_task_orchestrator.engine.run.core import RunCore
from multi_task_orchestrator.engine.run.node import Node, make_child
from multi_task_orchestrator.engine.run.records import Records
from multi_task_orchestrator.engine.run.scope import scope_of
from multi_task_orchestrator.engine.state import TaskState


@dataclass(frozen=True, slots=True)
class FanoutProblem:
    """Why a task's items cannot be fanned out (a ``config`` failure of the task)."""

    message: str


def fanout_items(items: Any, limit: int) -> list[Any] | FanoutProblem:
    """The items as a list (a mapping gives ``{key, value}`` items), or what is wrong with them."""
    if isinstance(items, ExpressionError):
        return FanoutProblem(f"for_each: {items.message}")
    if isinstance(items, dict):
        items = [{"key": key, "value": value} for key, value in items.items()]
    if not isinstance(items, list):
        kind = "nothing" if items is None else type(items).__name__
        return FanoutProblem(f"for_each must give a list, it gave {kind}")
    if len(items) > limit:
        return FanoutProblem(
            f"for_each gave {len(items)} items, more than the limit of {limit}; "
            "split the work or raise ORCHESTRATOR_MAX_TASKS"
        )
    return items


def items_summary(items: list[Node], total: int, *, failed: bool) -> str:
    """E.g. ``2 of 6 item(s) failed: each[1] (boom), each[4] (boom)``, or for items that were
    all cancelled for one reason ``6 of 6 item(s) cancelled (cancelled with Ctrl-C)``."""
    head = f"{len(items)} of {total} item(s) {'failed' if failed else 'cancelled'}"
    reasons = {item.reason for item in items}
    if not failed and len(reasons) == 1 and None not in reasons:
        return f"{head} ({reasons.pop()})"
    listed = ", ".join(
        f"{item.task_id} ({item.error or item.reason or item.state.value})" for item in items[:3]
    )
    more = f" and {len(items) - 3} more" if len(items) > 3 else ""
    return f"{head}: {listed}{more}"


class FanoutEnd(NamedTuple):
    """What a fan-out whose items all ended comes to: its state, the reason it was cancelled
    (if it was), and when it ended."""

    state: TaskState
    reason: str | None
    finished_at: float


class FanOut:
    """Expands one run's fan-out tasks into children and sums their children up."""

    def __init__(self, core: RunCore, records: Records) -> None:
        self._core = core
        self._records = records

    def for_each_items(self, parent: Node, read: Mapping[str, Any] | None = None) -> Any:
        """The items ``for_each`` gives, or the ExpressionError it raised; ``read``: outputs
        kept as files, already read (``scope.read_kept``)."""
        try:
            return resolve(parent.spec.for_each, scope_of(self._core, parent, read))
        except ExpressionError as exc:
            return exc

    def expand(self, parent: Node, items: Any) -> list[Node] | FanoutProblem:
        """One tracked child per item, recorded (the caller queues them), or what is wrong
        with the items."""
        checked = fanout_items(items, self._core.services.max_fanout)
        if isinstance(checked, FanoutProblem):
            return checked
        core = self._core
        parent.state = TaskState.running
        parent.started_at = time.time()
        parent.children = [
            core.table.add(make_child(parent, index, item)) for index, item in enumerate(checked)
        ]
        parent.children_open = len(parent.children)
        core.open += len(parent.children)
        self._records.persist(parent)
        for child in parent.children:
            self._records.persist(child)
        self._records.event(parent, "fanned_out", f"{len(checked)} item(s)")
        return parent.children

    def conclude(self, parent: Node) -> FanoutEnd:
        """Every item ended: the fan-out fails when one failed, is cancelled when items were
        cancelled and none failed (unless ``allow_partial`` keeps what succeeded while the run
        goes on), and succeeds otherwise. Sets its output (and error) for that end."""
        core = self._core
        children = parent.children or []
        cancelled = [child for child in children if child.state == TaskState.cancelled]
        failed = [
            child
            for child in children
            if child.state not in (TaskState.succeeded, TaskState.cancelled)
        ]
        finished = time.time()
        try:
            items = [core.output_of(child) for child in children]
            parent.output_json = core.keep_output(parent, json.dumps(items, default=str))
        except (OSError, TaskError) as exc:  # an item's output file is gone, or not writable
            message = f"the outputs of its items cannot be gathered: {exc}"
            parent.output = parent.output_json = None
            parent.error, parent.error_class, parent.root_error = message, "internal", message
            return FanoutEnd(TaskState.failed, None, finished)
        parent.output = None if outputs.reference(parent.output_json) else items
        if failed or cancelled:
            summary = items_summary(failed or cancelled, len(children), failed=bool(failed))
            if failed and cancelled:
                summary += f"; {len(cancelled)} cancelled"
            if parent.spec.allow_partial and (failed or not core.stopping):
                parent.reason = f"partial: {summary}"
            else:
                parent.output = None
                parent.output_json = None
                if not failed:
                    return FanoutEnd(TaskState.cancelled, summary, finished)
                parent.error = summary
                parent.error_class = failed[0].error_class or "error"
                parent.root_error = summary
                return FanoutEnd(TaskState.failed, None, finished)
        return FanoutEnd(TaskState.succeeded, None, finished)
