"""The store's rows (an orchestration, a task, an attempt) and how each maps to SQL: the
statements that write them, their parameters, and the columns a status reads back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(slots=True)
class OrchestrationRow:
    id: str
    name: str
    status: str
    document: dict[str, Any] | None  # None: keep the stored one (a run's later saves)
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    max_parallel: int = 0
    run_dir: str | None = None
    idempotency_key: str | None = None
    source: str | None = None
    owner: str | None = None  # the engine running it; it holds the lease until lease_until
    lease_until: float | None = None
    owner_process: str | None = None  # the owner's host, pid, start time (engine.owner)
    # None: the run has no model step; else its budget's limits ({} when it has none)
    budget: dict[str, Any] | None = None


@dataclass(slots=True)
class TaskRow:
    orchestration_id: str
    task_id: str
    position: int
    type: str
    label: str
    state: str
    parent_id: str | None = None
    attempts: int = 0
    max_attempts: int = 1
    started_at: float | None = None
    finished_at: float | None = None
    output_json: str | None = None
    error: str | None = None
    error_class: str | None = None
    reason: str | None = None
    chain: list[str] = field(default_factory=list)
    item_json: str | None = None
    item_index: int | None = None

    @property
    def output(self) -> Any:
        return None if self.output_json is None else json.loads(self.output_json)


# An event as the log reads it: (seq, ts, task_id, kind, level, message, data as JSON or None)
EventRow = tuple[int, float, str | None, str, str, str, str | None]

_TASK_ROW_FIELDS = tuple(item.name for item in fields(TaskRow))


def task_row(*values: Any) -> TaskRow:
    """A TaskRow from a row's values in the order of its fields."""
    return TaskRow(**dict(zip(_TASK_ROW_FIELDS, values, strict=False)))


@dataclass(slots=True)
class AttemptRow:
    orchestration_id: str
    task_id: str
    attempt: int
    started_at: float
    finished_at: float | None = None
    outcome: str | None = None
    error: str | None = None
    error_class: str | None = None
    queued_at: float | None = None  # when the attempt became ready (waiting = started - queued)
    waited_for: str | None = None  # the pool that made it wait, e.g. "rate limit api (10/s)"
    # what its model calls used (``ctx.record_usage``); None when it made none
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None  # of the calls with a price
    model_calls: int | None = None
    unpriced_calls: int | None = None
    model: str | None = None


UPSERT_ORCHESTRATION = """
INSERT INTO orchestrations (id, name, status, document, created_at, started_at, finished_at, error,
    max_parallel, run_dir, idempotency_key, source, owner, lease_until, owner_process, budget)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT (id) DO UPDATE SET status=excluded.status, started_at=excluded.started_at,
    finished_at=excluded.finished_at, error=excluded.error, max_parallel=excluded.max_parallel,
    run_dir=excluded.run_dir
"""
UPSERT_TASK = """
INSERT INTO tasks (orchestration_id, task_id, parent_id, position, type, label, state,
    attempts, max_attempts, started_at, finished_at, output, error, error_class, reason, chain,
    item, item_index)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT (orchestration_id, task_id) DO UPDATE SET state=excluded.state,
    attempts=excluded.attempts, max_attempts=excluded.max_attempts,
    started_at=excluded.started_at, finished_at=excluded.finished_at, output=excluded.output,
    error=excluded.error, error_class=excluded.error_class, reason=excluded.reason,
    chain=excluded.chain
"""
UPSERT_ATTEMPT = """
INSERT INTO attempts (orchestration_id, task_id, attempt, started_at, finished_at, outcome, error,
    error_class, queued_at, waited_for, input_tokens, output_tokens, cost_usd, model_calls,
    unpriced_calls, model)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT (orchestration_id, task_id, attempt) DO UPDATE SET finished_at=excluded.finished_at,
    outcome=excluded.outcome, error=excluded.error, error_class=excluded.error_class,
    input_tokens=excluded.input_tokens, output_tokens=excluded.output_tokens,
    cost_usd=excluded.cost_usd, model_calls=excluded.model_calls,
    unpriced_calls=excluded.unpriced_calls, model=excluded.model
"""
INSERT_EVENT = """
INSERT INTO events (orchestration_id, task_id, ts, kind, level, message, data)
VALUES (?,?,?,?,?,?,?)
"""


def task_params(row: TaskRow) -> tuple[Any, ...]:
    return (
        row.orchestration_id,
        row.task_id,
        row.parent_id,
        row.position,
        row.type,
        row.label,
        row.state,
        row.attempts,
        row.max_attempts,
        row.started_at,
        row.finished_at,
        row.output_json,
        row.error,
        row.error_class,
        row.reason,
        json.dumps(row.chain) if row.chain else None,
        row.item_json,
        row.item_index,
    )


def shallow_values(row: Any) -> tuple[Any, ...]:
    """A row's field values in order; unlike ``asdict``, nothing is deep-copied."""
    return tuple(getattr(row, f.name) for f in fields(row))


def orchestration_params(row: OrchestrationRow) -> tuple[Any, ...]:
    values = shallow_values(row)
    document = "{}" if row.document is None else json.dumps(row.document)
    budget = None if row.budget is None else json.dumps(row.budget)
    return (*values[:3], document, *values[4:-1], budget)


# A task row as a status reads it: no output (it can be large) or item, whether there is an
# output instead; ``status_row`` makes it a TaskRow.
STATUS_COLUMNS = (
    "orchestration_id, task_id, position, type, label, state, parent_id, attempts, "
    "max_attempts, started_at, finished_at, output IS NOT NULL, error, error_class, reason, "
    "chain"
)


def status_row(r: Sequence[Any]) -> tuple[TaskRow, bool]:
    """A row of ``STATUS_COLUMNS`` as a TaskRow without output, and whether it has one."""
    # positional, as the columns come: r[11] (whether there is an output) is no field
    row = task_row(*r[:11], None, r[12], r[13], r[14], json.loads(r[15]) if r[15] else [])
    return row, bool(r[11])
