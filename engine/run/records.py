"""What a run writes to the store and when: its row, each task's row (built when the batch is
committed, so a task that changes several times in between is written once), its events; and
reading a stored run's task rows back onto its nodes after a restart or for a retry."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from functools import partial
from typing import Any

from pydantic import TypeAdapter

from multi_task_orchestrator.engine import outputs
from multi_task_orchestrator.engine.document.models import TaskSpec
from multi_task_orchestrator.engine.run.core import RunCore
from multi_task_orchestrator.engine.run.node import Node, make_child
from multi_task_orchestrator.engine.run.table import SLICE
from multi_task_orchestrator.engine.state import TaskState
from multi_task_orchestrator.engine.store import OrchestrationRow, TaskRow


class Records:
    """One run's rows and events."""

    def __init__(self, core: RunCore) -> None:
        self._core = core
        self._store = core.services.store
        self._redact = core.services.redact
        self._redact_data = core.services.redact_data

    async def save_new(self) -> None:
        """Queue a new run's row, with its document, and every task's row (listings show the
        pending ones), all in one batch; the run may start once they are committed. The
        document is dumped a slice at a time, the event loop running other work in between;
        the rows are built as the batch is taken (a task queued by then is written as queued)."""
        core = self._core
        core.started_at = time.time()
        spec = core.spec
        head = spec.model_dump(mode="json", exclude_none=True, exclude={"tasks"})
        tasks: list[dict[str, Any]] = []
        for start in range(0, len(spec.tasks), SLICE):
            if start:
                await asyncio.sleep(0)
            tasks += _tasks_adapter().dump_python(
                spec.tasks[start : start + SLICE], mode="json", exclude_none=True
            )
        # the document as ``spec.model_dump`` gives it, its keys in the model's order
        document = {
            name: tasks if name == "tasks" else head[name]
            for name in type(spec).model_fields
            if name == "tasks" or name in head
        }
        self._store.put_orchestration(self.orchestration_row(document))
        put_task_later, run_id = self._store.put_task_later, core.id
        for node in core.table.order:
            put_task_later(run_id, node.task_id, partial(self.row, node))
        core.changed.set()

    def save_run(self) -> None:
        """Queue the run's row as it is now."""
        self._store.put_orchestration(self.orchestration_row())

    def orchestration_row(self, document: dict[str, Any] | None = None) -> OrchestrationRow:
        """The run's row; ``document`` only on its first save (None keeps the stored one)."""
        core = self._core
        services = core.services
        return OrchestrationRow(
            id=core.id,
            name=core.spec.name,
            status=core.status.value,
            document=document,
            created_at=core.created_at,
            started_at=core.started_at,
            finished_at=core.finished_at,
            error=core.error,
            max_parallel=core.max_parallel,
            run_dir=str(core.run_dir),
            idempotency_key=core.idempotency_key,
            source=core.source,
            owner=services.owner,
            lease_until=services.lease_deadline(),
            owner_process=services.owner_process,
            budget=core.stored_budget(),
        )

    def persist(self, node: Node) -> None:
        """Queue ``node``'s row, built as it is when the batch is committed."""
        self._store.put_task_later(self._core.id, node.task_id, partial(self.row, node))
        self._core.changed.set()

    def row(self, node: Node) -> TaskRow:
        return TaskRow(
            orchestration_id=self._core.id,
            task_id=node.task_id,
            position=node.position,
            type=node.spec.type,
            label=node.label,
            state=node.state.value,
            parent_id=node.parent.task_id if node.parent else None,
            attempts=node.attempts,
            max_attempts=node.max_attempts,
            started_at=node.started_at,
            finished_at=node.finished_at,
            output_json=node.output_json if node.state == TaskState.succeeded else None,
            error=node.error,
            error_class=node.error_class,
            reason=node.reason,
            chain=list(node.chain),
            item_json=json.dumps(node.item, default=str) if node.parent else None,
            item_index=node.index,
        )

    def event(
        self,
        node: Node | None,
        kind: str,
        message: str,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        """Add to the run's event log (secret values masked)."""
        self._store.add_event(
            self._core.id,
            node.task_id if node else None,
            kind,
            self._redact(message),
            ts=time.time(),
            level=level,
            data=self._redact_data(data) if data else None,
        )

    def restore(self, rows: list[TaskRow]) -> tuple[int, int]:
        """Apply persisted task rows after a restart; return (kept, to_run_again)."""
        by_id = {row.task_id: row for row in rows}
        children_of: dict[str, list[TaskRow]] = {}
        for row in rows:
            if row.parent_id is not None:
                children_of.setdefault(row.parent_id, []).append(row)
        kept = again = 0
        for node in self._core.table.order:
            stored = by_id.get(node.task_id)
            if stored is None:
                continue
            row = stored
            if _restore_node(node, row):
                kept += 1
            elif row.state not in (TaskState.pending, TaskState.queued):
                again += 1
            child_rows = children_of.get(node.task_id)
            if not child_rows:
                continue
            if not node.state.terminal:
                node.state = TaskState.running
            node.children = []
            for child_row in sorted(child_rows, key=lambda r: r.item_index or 0):
                item = json.loads(child_row.item_json or "null")
                child = self._core.table.add(make_child(node, child_row.item_index or 0, item))
                if _restore_node(child, child_row):
                    kept += 1
                else:
                    again += int(child_row.state not in (TaskState.pending, TaskState.queued))
                    node.children_open += 1
                node.children.append(child)
        return kept, again


@functools.cache
def _tasks_adapter() -> TypeAdapter[list[TaskSpec]]:
    """Dumps a slice of a document's tasks as the document's own dump would."""
    return TypeAdapter(list[TaskSpec])


def _restore_node(node: Node, row: TaskRow) -> bool:
    """Copy a terminal row onto its node; True when the node is finished."""
    node.attempts = row.attempts
    base_attempts = node.retry.max_attempts if node.retry else 1
    node.uncounted_attempts = max(0, row.max_attempts - base_attempts)
    if row.state == TaskState.running:
        node.uncounted_attempts += 1
    node.started_at = row.started_at
    if not TaskState(row.state).terminal:
        return False
    node.state = TaskState(row.state)
    node.finished_at = row.finished_at
    node.output_json = row.output_json
    node.output = None if outputs.reference(row.output_json) else row.output
    node.error = row.error
    node.error_class = row.error_class
    node.reason = row.reason
    node.chain = list(row.chain)
    node.root_error = row.error
    return True
