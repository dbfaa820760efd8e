"""The ``approvals`` table: an approval task's request and the decision a person (or its
timeout) made on it, written outside any group commit so that another process sees them at
once — the CLI decides while ``serve`` or a foreground ``run`` waits."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import aiosqlite

from multi_task_orchestrator.engine.store.writer import Writer

COLUMNS = (
    "orchestration_id, task_id, message, requested_at, deadline, decision, note, decided_by, "
    "decided_at"
)


@dataclass(frozen=True, slots=True)
class ApprovalRow:
    """One approval request; ``decision`` (``approved`` | ``rejected``) is None while it waits."""

    orchestration_id: str
    task_id: str
    message: str
    requested_at: float
    deadline: float | None = None
    decision: str | None = None
    note: str | None = None
    decided_by: str | None = None
    decided_at: float | None = None


class Approvals:
    """Requests and decisions, written through ``writer`` (one statement each), read on ``db``."""

    def __init__(self, writer: Writer, db: aiosqlite.Connection) -> None:
        self._writer = writer
        self._db = db

    async def request_approval(self, row: ApprovalRow) -> tuple[ApprovalRow, bool]:
        """Record ``row``'s request unless one is kept already (a resumed attempt keeps the
        first one's time and deadline); returns the request kept, and whether it is new."""
        added = await self._writer.write(
            f"INSERT OR IGNORE INTO approvals ({COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL, NULL, "
            "NULL, NULL)",
            (row.orchestration_id, row.task_id, row.message, row.requested_at, row.deadline),
        )
        kept = await self.get_approval(row.orchestration_id, row.task_id)
        assert kept is not None
        return kept, added > 0

    async def decide_approval(
        self,
        orchestration_id: str,
        task_id: str,
        *,
        decision: str,
        note: str | None,
        decided_by: str,
        decided_at: float,
    ) -> bool:
        """Record a decision on a request that has none yet; False when there is no such
        request or it was decided already (whoever decides first wins)."""
        changed = await self._writer.write(
            "UPDATE approvals SET decision = ?, note = ?, decided_by = ?, decided_at = ? "
            "WHERE orchestration_id = ? AND task_id = ? AND decision IS NULL",
            (decision, note, decided_by, decided_at, orchestration_id, task_id),
        )
        return changed > 0

    async def forget_approvals(self, orchestration_id: str, task_ids: Collection[str]) -> None:
        """Drop these tasks' requests (those that have one): a retry of the run asks again."""
        ids = sorted(task_ids)
        for start in range(0, len(ids), 500):  # well under SQLite's limit on parameters
            chunk = ids[start : start + 500]
            await self._writer.write(
                "DELETE FROM approvals WHERE orchestration_id = ? "
                f"AND task_id IN ({','.join('?' * len(chunk))})",
                (orchestration_id, *chunk),
            )

    async def get_approval(self, orchestration_id: str, task_id: str) -> ApprovalRow | None:
        rows = await self._db.execute_fetchall(
            f"SELECT {COLUMNS} FROM approvals WHERE orchestration_id = ? AND task_id = ?",
            (orchestration_id, task_id),
        )
        return ApprovalRow(*next(iter(rows))) if rows else None

    async def approvals_of(self, orchestration_id: str) -> dict[str, ApprovalRow]:
        """Every request of one run, by task id."""
        rows = await self._db.execute_fetchall(
            f"SELECT {COLUMNS} FROM approvals WHERE orchestration_id = ?", (orchestration_id,)
        )
        return {row[1]: ApprovalRow(*row) for row in rows}

    async def waiting_approvals(self, limit: int = 200) -> list[ApprovalRow]:
        """Requests nobody decided yet whose task still runs in an unfinished run, oldest first."""
        columns = ", ".join(f"a.{name.strip()}" for name in COLUMNS.split(","))
        rows = await self._db.execute_fetchall(
            f"SELECT {columns} FROM approvals a "
            "JOIN orchestrations o ON o.id = a.orchestration_id "
            "JOIN tasks t ON t.orchestration_id = a.orchestration_id AND t.task_id = a.task_id "
            "WHERE a.decision IS NULL AND o.status IN ('pending', 'running') "
            "AND t.state = 'running' ORDER BY a.requested_at LIMIT ?",
            (limit,),
        )
        return [ApprovalRow(*row) for row in rows]
