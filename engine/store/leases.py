"""Leases: which live process runs an orchestration (a claim adds one to the run's generation,
which fences the writes of whoever held it before), and what a process that died left open."""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite

from multi_task_orchestrator.engine.store.writer import Writer

PROCESS_DIED = "process_died"  # the error class of an attempt its process left open


class Leases:
    """Claims, renewals and releases of runs, written through ``writer`` outside any batch."""

    def __init__(self, writer: Writer, db: aiosqlite.Connection) -> None:
        self._writer = writer
        self._db = db

    async def claim(
        self,
        orchestration_id: str,
        owner: str,
        lease_until: float,
        now: float,
        *,
        process: str | None = None,
        dead_owner: str | None = None,
    ) -> bool:
        """Take an unfinished orchestration whose lease is free or expired, or whose owner is
        ``dead_owner`` (known to be gone, whatever its lease says); True if taken. ``process``
        is recorded as the new owner's ``owner_process``."""
        generation = await self._writer.write_returning(
            "UPDATE orchestrations SET owner = ?, lease_until = ?, owner_process = ?, "
            "generation = generation + 1 WHERE id = ? "
            "AND status IN ('pending', 'running') "
            "AND (owner IS NULL OR owner = ? OR owner = ? OR lease_until IS NULL "
            "OR lease_until < ?) RETURNING generation",
            (owner, lease_until, process, orchestration_id, owner, dead_owner, now),
        )
        if generation is None:
            return False
        self._writer.hold(orchestration_id, generation)
        return True

    async def claim_finished(
        self, orchestration_id: str, owner: str, lease_until: float, *, process: str | None
    ) -> bool:
        """Take a finished orchestration to run (some of) it again: it becomes ``running``,
        owned by ``owner``. False when it is not finished (another process took it first)."""
        generation = await self._writer.write_returning(
            "UPDATE orchestrations SET status = 'running', owner = ?, lease_until = ?, "
            "owner_process = ?, generation = generation + 1 WHERE id = ? "
            "AND status IN ('succeeded', 'failed', 'cancelled') RETURNING generation",
            (owner, lease_until, process, orchestration_id),
        )
        if generation is None:
            return False
        self._writer.hold(orchestration_id, generation)
        return True

    async def renew(self, owner: str, ids: Sequence[str], lease_until: float) -> set[str]:
        """Extend the leases ``owner`` still holds among ``ids`` (in the generation it
        claimed); return those ids."""
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        await self._writer.write(
            f"UPDATE orchestrations SET lease_until = ? WHERE owner = ? AND id IN ({marks})",
            (lease_until, owner, *ids),
        )
        cursor = await self._db.execute(
            f"SELECT id, generation FROM orchestrations WHERE owner = ? AND id IN ({marks})",
            (owner, *ids),
        )
        held = self._writer.held
        return {
            orchestration_id
            for orchestration_id, generation in await cursor.fetchall()
            if held.get(orchestration_id, generation) == generation
        }

    async def release(self, owner: str, ids: Sequence[str]) -> None:
        """Give up leases, so that any process may resume these orchestrations at once."""
        if ids:
            marks = ",".join("?" * len(ids))
            await self._writer.write(
                "UPDATE orchestrations SET owner = NULL, lease_until = NULL, owner_process = NULL "
                f"WHERE owner = ? AND id IN ({marks})",
                (owner, *ids),
            )

    async def close_interrupted_attempts(self, orchestration_id: str, ts: float) -> int:
        """Mark attempts a process left open as interrupted by its death (a process that
        stops gracefully closes its own: ``interrupted`` without a class); return how many."""
        await self._writer.flush()
        return await self._writer.write(
            "UPDATE attempts SET finished_at = ?, outcome = 'interrupted', error = ?, "
            "error_class = ? WHERE orchestration_id = ? AND finished_at IS NULL",
            (
                ts,
                "the process running this attempt died or stopped responding",
                PROCESS_DIED,
                orchestration_id,
            ),
        )

    async def died_twice(self, orchestration_id: str) -> set[str]:
        """Tasks whose last two attempts were both ended by their process dying."""
        rows = await self._db.execute_fetchall(
            "SELECT task_id, error_class FROM attempts WHERE orchestration_id = ? AND task_id IN "
            "(SELECT task_id FROM attempts WHERE orchestration_id = ? AND error_class = ?) "
            "ORDER BY task_id, attempt DESC",
            (orchestration_id, orchestration_id, PROCESS_DIED),
        )
        last_two: dict[str, list[str | None]] = {}
        for task_id, error_class in rows:
            classes = last_two.setdefault(task_id, [])
            if len(classes) < 2:
                classes.append(error_class)
        return {task for task, classes in last_two.items() if classes == [PROCESS_DIED] * 2}
