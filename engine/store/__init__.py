"""SQLite persistence for orchestrations, tasks, attempts and the event log, with group commit.

``Store`` (``database``) is the one object the engine uses. Inside, one job per module: the row
types and their SQL (``rows``), the tables and their versions (``schema``), the write
connection and its thread (``connection``), one group commit's transaction (``batch``), the
queue and the writer coroutine (``writer``), queries (``reader``), leases (``leases``),
schedules (``schedules``), and the error the store raises (``errors``).
"""

from multi_task_orchestrator.engine.store.approvals import ApprovalRow
from multi_task_orchestrator.engine.store.batch import LOST, ROWS_PER_SLICE
from multi_task_orchestrator.engine.store.database import Store
from multi_task_orchestrator.engine.store.errors import BUSY_RETRIES, BUSY_TIMEOUT_MS, StoreError
from multi_task_orchestrator.engine.store.leases import PROCESS_DIED
from multi_task_orchestrator.engine.store.rows import (
    AttemptRow,
    EventRow,
    OrchestrationRow,
    TaskRow,
)
from multi_task_orchestrator.engine.store.schedules import ScheduleRow
from multi_task_orchestrator.engine.store.schema import MIGRATIONS as _MIGRATIONS
from multi_task_orchestrator.engine.store.schema import SCHEMA as _SCHEMA
from multi_task_orchestrator.engine.store.schema import SCHEMA_VERSION
from multi_task_orchestrator.engine.store.writer import COMMIT_DELAY, INLINE_COMMIT_ROWS

__all__ = [
    "BUSY_RETRIES",
    "BUSY_TIMEOUT_MS",
    "COMMIT_DELAY",
    "INLINE_COMMIT_ROWS",
    "LOST",
    "PROCESS_DIED",
    "ROWS_PER_SLICE",
    "SCHEMA_VERSION",
    "_MIGRATIONS",
    "_SCHEMA",
    "ApprovalRow",
    "AttemptRow",
    "EventRow",
    "OrchestrationRow",
    "ScheduleRow",
    "Store",
    "StoreError",
    "TaskRow",
]
