"""Taking runs up again: resuming the runs a previous process left unfinished (failing the
tasks that were running each time it died, twice in a row), telling which unfinished runs
another live process holds, and retrying a finished run's failed, skipped and cancelled tasks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

from multi_task_orchestrator.engine.document.models import Orchestration
from multi_task_orchestrator.engine.facade_errors import NotAllowedNow
from multi_task_orchestrator.engine.owner import HeldRun, Liveness, ProcessInfo, liveness
from multi_task_orchestrator.engine.run import Run, RunServices
from multi_task_orchestrator.engine.state import RunStatus, TaskState
from multi_task_orchestrator.engine.store import OrchestrationRow, TaskRow

DIED_TWICE = (
    "this task was running when the process died twice; it is not started again — retry it "
    "with `orchestrator retry {run_id}` once the cause is fixed"
)


class Recovery:
    """Rebuilds runs from the store into ``runs`` (the engine's table of the runs this process
    executes, shared with it) and starts them, holding their leases as ``services`` says."""

    def __init__(self, services: RunServices, runs: dict[str, Run], runs_dir: Path) -> None:
        self._services = services
        self._store = services.store
        self._runs = runs
        self._runs_dir = runs_dir  # where a run without a recorded folder keeps its files

    async def resume(self, orchestration_id: str | None = None) -> list[str]:
        """Continue orchestrations a previous process left running; return their ids."""
        store, services = self._store, self._services
        resumed = []
        for row in await store.unfinished():
            if row.id in self._runs or (orchestration_id and row.id != orchestration_id):
                continue
            gone = liveness(ProcessInfo.from_json(row.owner_process)) == Liveness.dead
            claiming = asyncio.get_running_loop().time()
            claimed = await store.claim(
                row.id,
                services.owner,
                services.lease_deadline(),
                time.time(),
                process=services.owner_process,
                dead_owner=row.owner if gone else None,
            )
            if not claimed:
                continue  # a live process holds its lease
            run = await self._stored_run(
                row,
                lease_valid_until=claiming + services.lease_seconds,
                started_at=row.started_at,
                max_parallel=row.max_parallel,
                # an owner that stopped gracefully released the run (owner NULL); one that did
                # not may have died because of a task: until the run ends, each attempt's start
                # is committed before its runner runs, so that a task that kills the process is
                # counted (without it, a start is committed within the group-commit delay)
                durable_starts=row.owner is not None,
            )
            died = await store.close_interrupted_attempts(row.id, time.time())
            rows = await store.load_tasks(row.id)
            given_up = await self._fail_died_twice(row.id, rows) if died else 0
            kept, again = run.restore(rows)
            failed = f", {given_up} failed: they were running when the process died twice"
            store.add_event(
                row.id,
                None,
                "resumed",
                f"resumed after an interruption: {kept} finished task(s) kept, "
                f"{again} interrupted task(s) will run again" + (failed if given_up else ""),
                ts=time.time(),
                level="warning",
            )
            self._runs[row.id] = run
            run.start()
            resumed.append(row.id)
        await store.flush()
        return resumed

    async def _fail_died_twice(self, run_id: str, rows: list[TaskRow]) -> int:
        """Fail (in ``rows`` and in the store) the unfinished tasks whose last two attempts
        ended with their process dying: started a third time, they would likely take this
        process down too. Returns how many."""
        died_twice = await self._store.died_twice(run_id)
        if not died_twice:
            return 0
        message = DIED_TWICE.format(run_id=run_id)
        now = time.time()
        count = 0
        for index, task_row in enumerate(rows):
            if task_row.task_id not in died_twice or TaskState(task_row.state).terminal:
                continue
            rows[index] = dataclasses.replace(
                task_row,
                state=TaskState.failed.value,
                finished_at=now,
                error=message,
                error_class="crashed",
            )
            self._store.put_task(rows[index])
            self._store.add_event(
                run_id, task_row.task_id, "failed", message, ts=now, level="error"
            )
            count += 1
        return count

    async def held_elsewhere(self, orchestration_id: str | None = None) -> list[HeldRun]:
        """Unfinished runs (or the one given) that another live process holds: what
        ``resume`` leaves alone, each with who holds it."""
        held = []
        for row in await self._store.unfinished():
            if row.id in self._runs or (orchestration_id and row.id != orchestration_id):
                continue
            if row.owner in (None, self._services.owner):
                continue
            if row.lease_until is None or row.lease_until < time.time():
                continue  # free to take: it is not held
            process = ProcessInfo.from_json(row.owner_process)
            state = liveness(process)
            if state != Liveness.dead:
                held.append(HeldRun(row.id, row.status, process, state, row.lease_until))
        return held

    async def _not_finished(self, orchestration_id: str, status: str) -> str:
        """Why an unfinished run cannot be retried, and what to do: wait for the process
        that runs it, or resume it when none does (the one that did stopped or died)."""
        if orchestration_id not in self._runs:
            held = await self.held_elsewhere(orchestration_id)
            if held:
                return f"{held[0].explain()}; retry it once it has finished"
            return (
                f"orchestration {orchestration_id} is still {status}, but no process runs it "
                f"(the one that did has stopped): `orchestrator resume {orchestration_id}` "
                "finishes it (an `orchestrator serve` does too); retry what fails after that"
            )
        return (
            f"orchestration {orchestration_id} is still {status}; wait for it to finish "
            "(or cancel it) before retrying"
        )

    async def retry(self, orchestration_id: str) -> str:
        """Run a finished orchestration's failed, skipped and cancelled tasks again (given its
        full id); see ``Engine.retry``."""
        store, services = self._store, self._services
        ending = self._runs.get(orchestration_id)
        if ending is not None and ending.ending:  # its end may be committed already: see it out
            await asyncio.shield(ending.finished.wait())
        row = await store.get_orchestration(orchestration_id)
        assert row is not None
        if orchestration_id in self._runs or not RunStatus(row.status).terminal:
            raise NotAllowedNow(await self._not_finished(orchestration_id, row.status))
        if row.status == RunStatus.succeeded:
            raise NotAllowedNow(
                f"every task of orchestration {orchestration_id} succeeded; nothing to retry"
            )
        await store.flush()  # nothing of ours may overwrite the claim below
        claiming = asyncio.get_running_loop().time()
        # without it, the heartbeat would find the run owned by its last owner and drop it
        if not await store.claim_finished(
            orchestration_id,
            services.owner,
            services.lease_deadline(),
            process=services.owner_process,
        ):
            raise NotAllowedNow(
                f"orchestration {orchestration_id} is already running again (another process "
                "retried or resumed it); watch it with `orchestrator status`"
            )
        rows = await store.load_tasks(orchestration_id)
        rerun = {r.task_id for r in rows if r.state not in (TaskState.succeeded, TaskState.pending)}
        rerun |= {r.parent_id for r in rows if r.task_id in rerun and r.parent_id}
        rows = [_fresh(r) if r.task_id in rerun else r for r in rows]
        await store.forget_approvals(orchestration_id, rerun)  # approval tasks ask again
        started_at = time.time()
        run = await self._stored_run(
            row, lease_valid_until=claiming + services.lease_seconds, started_at=started_at
        )
        # from here to the flush nothing awaits: the fresh rows commit with the run's start
        for task_row in rows:
            if task_row.task_id in rerun:
                store.put_task(task_row)
        run.restore(rows)
        store.add_event(
            row.id,
            None,
            "retried",
            f"retry requested: {len(rerun)} task(s) run again, {len(rows) - len(rerun)} kept",
            ts=started_at,
        )
        self._runs[row.id] = run
        run.start()
        await store.flush()
        return row.id

    async def _stored_run(self, row: OrchestrationRow, **options: Any) -> Run:
        """A Run rebuilt from its stored row (to resume or retry it), what its attempts used
        counted against its budgets; ``options`` as ``Run`` takes them."""
        run = await Run.build(
            self._services,
            row.id,
            Orchestration.model_validate(row.document),
            created_at=row.created_at,
            run_dir=Path(row.run_dir) if row.run_dir else self._runs_dir / row.id,
            idempotency_key=row.idempotency_key,
            source=row.source,
            **options,
        )
        await run.restore_usage()
        return run


def _fresh(row: TaskRow) -> TaskRow:
    """A task row made ready to run again."""
    return dataclasses.replace(
        row,
        state=TaskState.pending.value,
        max_attempts=row.max_attempts + row.attempts,  # a fresh budget; numbering continues
        started_at=None,
        finished_at=None,
        output_json=None,
        error=None,
        error_class=None,
        reason=None,
        chain=[],
    )
