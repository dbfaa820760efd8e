"""Reading runs for callers: an id (or a unique prefix of one) resolved, a run as a snapshot or
as a status shows it, its own state, and waiting for its end — from the run itself while this
process executes it, from the database otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import Callable, Mapping
from operator import attrgetter

from multi_task_orchestrator.engine import outputs, status_rows
from multi_task_orchestrator.engine.approvals import with_approvals
from multi_task_orchestrator.engine.cpu_work import cpu_bound
from multi_task_orchestrator.engine.facade_errors import UnknownOrchestration
from multi_task_orchestrator.engine.run import Run, task_snapshot
from multi_task_orchestrator.engine.state import RunSnapshot, RunStatus, TaskSnapshot, TaskState
from multi_task_orchestrator.engine.status_rows import keep_status_rows, status_display_rank
from multi_task_orchestrator.engine.store import OrchestrationRow, Store, StoreError, TaskRow
from multi_task_orchestrator.engine.usage import run_usage

POLL_SECONDS = 0.25  # how often to look at a run another process executes


class StatusReads:
    """Reads the runs in ``runs`` (the engine's table of the runs this process executes, shared
    with it) and, for the others, ``store``; ``broken`` is the engine's store failure, if any."""

    def __init__(
        self, store: Store, runs: dict[str, Run], broken: Callable[[], StoreError | None]
    ) -> None:
        self._store = store
        self._runs = runs
        self._broken = broken

    def _check_store(self) -> None:
        if (broken := self._broken()) is not None:
            raise StoreError(str(broken))

    async def resolve_id(self, orchestration_id: str) -> str:
        """The full id for an id or a unique prefix of one."""
        if orchestration_id in self._runs:
            return orchestration_id
        store = self._store
        if await store.exists(orchestration_id):
            return orchestration_id
        matches = await store.matching_ids(orchestration_id, limit=5) if orchestration_id else []
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UnknownOrchestration(
                orchestration_id, matches, problem=f"'{orchestration_id}' matches several runs"
            )
        recent = [row.id for row in await store.list_orchestrations(limit=5)]
        raise UnknownOrchestration(orchestration_id, recent)

    async def snapshot(
        self, orchestration_id: str, *, include_outputs: bool = False
    ) -> RunSnapshot:
        self._check_store()
        orchestration_id = await self.resolve_id(orchestration_id)
        run = self._runs.get(orchestration_id)
        if run is not None:
            snapshot = run.snapshot(include_outputs=include_outputs, load_output_files=False)
        else:
            row = await self._store.get_orchestration(orchestration_id, with_document=False)
            assert row is not None
            tasks = await self._store.load_tasks(orchestration_id)
            snapshot = _snapshot_from_rows(row, tasks, include_outputs=include_outputs)
            snapshot = await self._with_usage(snapshot, row)
        if include_outputs:
            await _load_output_files(snapshot)
        return await with_approvals(self._store, snapshot)

    async def run_status(self, orchestration_id: str) -> RunStatus:
        """The run's own state, without reading any of its tasks."""
        orchestration_id = await self.resolve_id(orchestration_id)
        run = self._runs.get(orchestration_id)
        if run is not None:
            return run.status
        row = await self._store.get_orchestration(orchestration_id, with_document=False)
        assert row is not None
        return RunStatus(row.status)

    async def status(
        self,
        orchestration_id: str,
        *,
        display_rows: int,
        top: int = 0,
        rank: Mapping[TaskState, int] | None = None,
    ) -> RunSnapshot:
        """The run as a status shows it, without building a snapshot of every task.

        Every task's state is counted (``task_counts``: ``counts()``, ``done``, ``total`` and
        ``percent`` are the whole run's), but ``tasks`` holds only the rows that
        ``render_status(max_rows=display_rows)`` keeps, the first ``top`` tasks ordered by
        ``(rank[state], position)`` (states ``rank`` leaves out after the others; by position
        alone without ``rank``), and the ancestors of each; in document order, without outputs.
        A run of at most ``max(display_rows, top)`` tasks comes whole, as ``snapshot`` gives it.
        """
        snapshot = await self._status(orchestration_id, display_rows, top, rank)
        return await with_approvals(self._store, snapshot)

    async def _status(
        self,
        orchestration_id: str,
        display_rows: int,
        top: int,
        rank: Mapping[TaskState, int] | None,
    ) -> RunSnapshot:
        if display_rows < 1:
            raise ValueError(f"display_rows must be at least 1, got {display_rows}")
        self._check_store()
        store = self._store
        choice = status_rows.StatusRows(display_rows, top, dict(rank or {}))
        row = None
        if orchestration_id not in self._runs:  # a full id needs no resolving: one read less
            row = await store.get_orchestration(orchestration_id, with_document=False)
        if row is None:
            orchestration_id = await self.resolve_id(orchestration_id)
        run = self._runs.get(orchestration_id)
        if run is not None:
            by_state = run.nodes_by_state()
            return run.status_snapshot(choice.pick_nodes(by_state), by_state)
        if row is None:
            row = await store.get_orchestration(orchestration_id, with_document=False)
        assert row is not None
        counts = await store.count_task_states(orchestration_id)
        if sum(counts.values()) <= choice.whole:
            rows = await store.load_ranked_tasks(orchestration_id)
            shown = [task_snapshot(t, has_output=has) for t, has in rows]
            return await self._with_usage(_run_snapshot(row, shown), row)
        shown = await self._stored_status_rows(orchestration_id, choice, counts)
        if len(shown) == sum(counts.values()):
            return await self._with_usage(_run_snapshot(row, shown), row)
        snapshot = _run_snapshot(row, shown, task_counts=counts)
        if counts.get(TaskState.running.value):
            snapshot.fan_outs_running = await store.count_running_fan_outs(orchestration_id)
        return await self._with_usage(snapshot, row)

    async def _with_usage(self, snapshot: RunSnapshot, row: OrchestrationRow) -> RunSnapshot:
        """``snapshot`` of a stored run with what its model calls used (a run with model steps;
        ``row.budget`` says whether it has them)."""
        if row.budget is not None:
            snapshot.usage = run_usage(await self._store.usage_totals(row.id), row.budget)
        return snapshot

    async def _stored_status_rows(
        self, orchestration_id: str, choice: status_rows.StatusRows, counts: dict[str, int]
    ) -> list[TaskSnapshot]:
        """The tasks ``status`` keeps of a run read from the database (``counts`` says how many
        are in each state), in document order."""
        store = self._store
        found: dict[str, TaskSnapshot] = {}

        def add(rows: list[tuple[TaskRow, bool]]) -> list[TaskSnapshot]:
            for task, has_output in rows:
                if task.task_id not in found:
                    found[task.task_id] = task_snapshot(task, has_output=has_output)
            return [found[task.task_id] for task, _ in rows]

        def parent_of(task: TaskSnapshot) -> TaskSnapshot | None:
            return found.get(task.parent_id) if task.parent_id else None

        def ancestors(task: TaskSnapshot) -> list[TaskSnapshot]:
            return status_rows.ancestors(task, parent_of)

        async def add_missing_parents() -> None:
            missing = {t.parent_id for t in found.values() if t.parent_id} - found.keys()
            while missing:
                rows = await store.load_tasks_by_id(orchestration_id, sorted(missing))
                add(rows)
                missing = {task.parent_id for task, _ in rows if task.parent_id} - found.keys()

        top: list[TaskSnapshot] = []
        if choice.top:
            top_rank = status_rows.rank_in_use(choice.rank_of, counts)
            top = add(await store.load_ranked_tasks(orchestration_id, top_rank, limit=choice.top))
        # The display takes rows in its own order, each with its ancestors, while they fit: as
        # far as the rows read already give that order, then a page at a time from the database.
        ranked = status_rows.known_start(top, counts, choice.rank_of, status_display_rank)
        display_rank = status_rows.rank_in_use(status_display_rank, counts)
        page = 0
        while True:
            await add_missing_parents()
            kept = keep_status_rows(ranked, ancestors, choice.budget)
            if len(kept) >= choice.budget:
                break
            page = max(2 * page, choice.budget - len(kept) + 8)
            rows = await store.load_ranked_tasks(
                orchestration_id, display_rank, limit=page, offset=len(ranked)
            )
            if not rows:
                break
            ranked.extend(add(rows))
        return sorted(found.values(), key=attrgetter("position"))

    async def wait(
        self, orchestration_id: str, timeout: float | None = None, *, include_outputs: bool = False
    ) -> RunSnapshot:
        """Wait until the run ends or ``timeout`` seconds pass; return the status reached.

        A run of this process is awaited; one another process runs is polled in the database.
        """
        orchestration_id = await self.resolve_id(orchestration_id)
        run = self._runs.get(orchestration_id)
        await self.wait_until_finished(orchestration_id, timeout)
        ended_here = run is not None and run.finished.is_set() and not run.taken_over
        if ended_here and not include_outputs and not self._broken():
            # it ended here, and committed all it holds: its final snapshot is at hand
            assert run is not None
            return await with_approvals(self._store, run.snapshot())
        return await self.snapshot(orchestration_id, include_outputs=include_outputs)

    async def wait_until_finished(self, orchestration_id: str, timeout: float | None = None) -> str:
        """Wait as ``wait`` does, but build no snapshot; return the orchestration's full id."""
        orchestration_id = await self.resolve_id(orchestration_id)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while (run := self._runs.get(orchestration_id)) is None:
                    self._check_store()
                    row = await self._store.get_orchestration(orchestration_id, with_document=False)
                    assert row is not None
                    if RunStatus(row.status).terminal:
                        break
                    await asyncio.sleep(POLL_SECONDS)
                else:
                    await asyncio.shield(run.finished.wait())
                    if run.taken_over:  # another process finishes it: watch the database
                        return await self.wait_until_finished(orchestration_id)
        return orchestration_id


def _snapshot_from_rows(
    row: OrchestrationRow, tasks: list[TaskRow], *, include_outputs: bool
) -> RunSnapshot:
    """The stored run; with ``include_outputs``, each output as held (``_load_output_files``
    reads the large ones from their files)."""
    return _run_snapshot(
        row,
        [
            task_snapshot(
                task,
                output=json.loads(task.output_json)
                if include_outputs and task.output_json is not None
                else None,
            )
            for task in tasks
        ],
    )


async def _load_output_files(snapshot: RunSnapshot) -> None:
    """Read the outputs kept as files into ``snapshot`` (which holds their references), on a
    worker thread: a 200 MB one takes a second."""
    held = {task.task_id: task.output for task in snapshot.tasks if outputs.referenced(task.output)}
    if not held:
        return
    loaded = await cpu_bound(
        functools.partial(outputs.load_files, held, snapshot.run_dir, missing_ok=True)
    )
    for task in snapshot.tasks:
        if task.task_id in loaded:
            task.output = loaded[task.task_id]


def _run_snapshot(
    row: OrchestrationRow,
    tasks: list[TaskSnapshot],
    *,
    task_counts: dict[str, int] | None = None,
) -> RunSnapshot:
    """A stored run with these tasks (all of them, unless ``task_counts`` counts them all)."""
    return RunSnapshot(
        id=row.id,
        name=row.name,
        status=RunStatus(row.status),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        error=row.error,
        max_parallel=row.max_parallel,
        run_dir=row.run_dir,
        tasks=tasks,
        task_counts=task_counts,
    )
