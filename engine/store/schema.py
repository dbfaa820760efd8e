"""The database's tables and their versions: a new file gets the schema, an older one is
migrated a version at a time, a newer one is refused."""

from __future__ import annotations

import aiosqlite

from multi_task_orchestrator.engine.store.errors import BUSY_TIMEOUT_MS, StoreError

SCHEMA_VERSION = 7

# The schedules (engine/store/schedules.py): what runs when, and what each fire did.
SCHEDULES_TABLE = """CREATE TABLE IF NOT EXISTS schedules (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    document TEXT NOT NULL,
    vars TEXT,
    cron TEXT,
    every REAL,
    timezone TEXT NOT NULL,
    overlap TEXT NOT NULL,
    catch_up TEXT NOT NULL,
    created_at REAL NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    next_fire_at REAL,
    queued_at REAL,
    last_fire_at REAL,
    last_run_id TEXT,
    fires INTEGER NOT NULL DEFAULT 0,
    skips INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
)"""

# An approval task's request (kept across restarts: a resumed attempt waits for the same
# deadline) and the person's decision on it.
APPROVALS_TABLE = """CREATE TABLE IF NOT EXISTS approvals (
    orchestration_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    message TEXT NOT NULL,
    requested_at REAL NOT NULL,
    deadline REAL,
    decision TEXT,
    note TEXT,
    decided_by TEXT,
    decided_at REAL,
    PRIMARY KEY (orchestration_id, task_id)
) WITHOUT ROWID"""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orchestrations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    document TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    error TEXT,
    max_parallel INTEGER NOT NULL DEFAULT 0,
    run_dir TEXT,
    idempotency_key TEXT UNIQUE,
    source TEXT,
    owner TEXT,
    lease_until REAL,
    owner_process TEXT,
    generation INTEGER NOT NULL DEFAULT 0,
    budget TEXT
);
CREATE INDEX IF NOT EXISTS orchestrations_by_status ON orchestrations (status, created_at);
CREATE TABLE IF NOT EXISTS tasks (
    orchestration_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    parent_id TEXT,
    position INTEGER NOT NULL,
    type TEXT NOT NULL,
    label TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 1,
    started_at REAL,
    finished_at REAL,
    output TEXT,
    error TEXT,
    error_class TEXT,
    reason TEXT,
    chain TEXT,
    item TEXT,
    item_index INTEGER,
    PRIMARY KEY (orchestration_id, task_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attempts (
    orchestration_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT,
    error TEXT,
    error_class TEXT,
    queued_at REAL,
    waited_for TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost_usd REAL,
    model_calls INTEGER,
    unpriced_calls INTEGER,
    model TEXT,
    PRIMARY KEY (orchestration_id, task_id, attempt)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    orchestration_id TEXT NOT NULL,
    task_id TEXT,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT
);
CREATE INDEX IF NOT EXISTS events_by_orchestration ON events (orchestration_id, seq);
{APPROVALS_TABLE};
{SCHEDULES_TABLE};
"""

# Each step brings a database of the version before it up to the next one.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "ALTER TABLE attempts ADD COLUMN queued_at REAL",
        "ALTER TABLE attempts ADD COLUMN waited_for TEXT",
    ),
    2: ("ALTER TABLE orchestrations ADD COLUMN lease_until REAL",),
    3: ("ALTER TABLE orchestrations ADD COLUMN owner_process TEXT",),
    4: ("ALTER TABLE orchestrations ADD COLUMN generation INTEGER NOT NULL DEFAULT 0",),
    5: (
        "ALTER TABLE orchestrations ADD COLUMN budget TEXT",
        "ALTER TABLE attempts ADD COLUMN input_tokens INTEGER",
        "ALTER TABLE attempts ADD COLUMN output_tokens INTEGER",
        "ALTER TABLE attempts ADD COLUMN cost_usd REAL",
        "ALTER TABLE attempts ADD COLUMN model_calls INTEGER",
        "ALTER TABLE attempts ADD COLUMN unpriced_calls INTEGER",
        "ALTER TABLE attempts ADD COLUMN model TEXT",
    ),
    6: (APPROVALS_TABLE, SCHEDULES_TABLE),
}


async def prepare(db: aiosqlite.Connection) -> None:
    """Set the connection's pragmas and bring the file to ``SCHEMA_VERSION``."""
    await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    await db.execute("PRAGMA journal_mode = WAL")
    await db.execute("PRAGMA synchronous = NORMAL")
    await db.execute("PRAGMA foreign_keys = ON")
    cursor = await db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    )
    version = 0
    if await cursor.fetchone():
        cursor = await db.execute("SELECT version FROM schema_version")
        row = await cursor.fetchone()
        version = row[0] if row else 0
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the state database was written by a newer version (schema {version}, this "
            f"version reads {SCHEMA_VERSION}); upgrade multi-task-orchestrator"
        )
    if version == SCHEMA_VERSION:
        return
    await db.execute("BEGIN IMMEDIATE")
    try:
        if version == 0:
            for statement in filter(str.strip, SCHEMA.split(";")):
                await db.execute(statement)
        else:
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step]:
                    await db.execute(statement)
        await db.execute("DELETE FROM schema_version")
        await db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        await db.execute("COMMIT")
    except BaseException:
        await db.execute("ROLLBACK")
        raise
