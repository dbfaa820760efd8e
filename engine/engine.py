"""The engine: one per process; submits, watches, cancels and resumes orchestrations.

This is the whole API the CLI and the MCP tools use. It owns the store, the runners, the
server-wide slot pool and the runs in progress; each run schedules itself (``engine.run``).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import functools
import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from operator import attrgetter
from pathlib import Path
from secrets import token_hex
from typing import Any

from pydantic import BaseModel

from multi_task_orchestrator.engine import outputs, registry, status_rows
from multi_task_orchestrator.engine.backends import Backend
from multi_task_orchestrator.engine.backends.local import LocalBackend
from multi_task_orchestrator.engine.cpu_work import cpu_bound
from multi_task_orchestrator.engine.document.loader import MAX_DOCUMENT_BYTES, RawDocument
from multi_task_orchestrator.engine.document.models import Orchestration
from multi_task_orchestrator.engine.document.validation import Validation, validate
from multi_task_orchestrator.engine.gc_policy import tune_garbage_collector
from multi_task_orchestrator.engine.issues import DocumentError, Issue
from multi_task_orchestrator.engine.network import Network
from multi_task_orchestrator.engine.owner import (
    HeldRun,
    Liveness,
    ProcessInfo,
    liveness,
    this_process,
)
from multi_task_orchestrator.engine.pools import Pool
from multi_task_orchestrator.engine.reports.run_end import write_files_on_run_end
from multi_task_orchestrator.engine.run import (
    Run,
    RunHandle,
    RunServices,
    make_run_id,
    task_snapshot,
)
from multi_task_orchestrator.engine.run_end import RunEndListener
from multi_task_orchestrator.engine.runners.base import Runner
from multi_task_orchestrator.engine.secrets import (
    NoVault,
    SecretResolver,
    names_to_check,
    redact_data,
)
from multi_task_orchestrator.engine.state import RunSnapshot, RunStatus, TaskSnapshot, TaskState
from multi_task_orchestrator.engine.status_rows import keep_status_rows, status_display_rank
from multi_task_orchestrator.engine.store import OrchestrationRow, Store, StoreError, TaskRow
from multi_task_orchestrator.engine.usage import run_usage

DIED_TWICE = (
    "this task was running when the process died twice; it is not started again — retry it "
    "with `orchestrator retry {run_id}` once the cause is fixed"
)

DEFAULT_MAX_CONCURRENT = 64
DEFAULT_MAX_TASKS = 10_000
DEFAULT_LEASE_SECONDS = 15.0  # a run whose owner stops renewing is taken over after this long
DEFAULT_SHUTDOWN_GRACE = 10.0
CANCEL_WAIT = 5.0  # seconds a cancelled task's runner is given to stop before cancel returns

logger = logging.getLogger("orchestrator.engine")
POLL_SECONDS = 0.25  # how often to look at a run another process executes

Source = str | Path | Mapping[str, Any] | RawDocument | Orchestration


class UnknownOrchestration(LookupError):
    """No orchestration has that id; the message lists recent ones."""

    def __init__(
        self, orchestration_id: str, recent: list[str], *, problem: str | None = None
    ) -> None:
        listing = ", ".join(recent) if recent else "none yet"
        label = "matching ids" if problem else "recent ids"
        problem = problem or f"no orchestration has the id '{orchestration_id}'"
        super().__init__(f"{problem}; {label}: {listing}")
        self.orchestration_id = orchestration_id
        self.recent = recent


class UnknownTask(LookupError):
    """The orchestration has no task with that id."""


class NotAllowedNow(Exception):
    """The request does not fit the orchestration's state; the message says why and what to do."""


class Engine:
    """Open with ``await Engine.open(db_path, runs_dir)`` (or ``async with``)."""

    def __init__(
        self,
        store: Store,
        *,
        runs_dir: Path,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        max_tasks: int = DEFAULT_MAX_TASKS,
        secrets: SecretResolver | None = None,
        runner_types: Mapping[str, type[Runner]] | None = None,
        network: Network | None = None,
        workspace: Path | None = None,
        resources: Mapping[str, Any] | None = None,
        backend: Backend | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE,
        output_threshold: int = outputs.DEFAULT_THRESHOLD,
        runner_settings: Mapping[str, BaseModel | Mapping[str, Any]] | None = None,
        max_document_bytes: int = MAX_DOCUMENT_BYTES,
        run_end_listeners: Sequence[RunEndListener] | None = None,
    ) -> None:
        self.store = store
        # awaited in order as each run ends, before its end is published; by default the
        # writer of the run's files (results, log, summary, report.html)
        self.run_end_listeners: list[RunEndListener] = list(
            (write_files_on_run_end,) if run_end_listeners is None else run_end_listeners
        )
        self.runs_dir = runs_dir
        self.max_tasks = max_tasks
        self.secrets: SecretResolver = secrets or NoVault()
        self._redacting = not isinstance(self.secrets, NoVault)
        self.server_pool = Pool("server", max_concurrent, kind="server")
        # shared objects runners find in ctx.resources (settings go to each runner instead)
        self.resources: dict[str, Any] = dict(resources or {})
        self.network = network or Network()
        self.backend: Backend = backend or LocalBackend()
        self.workspace = workspace or runs_dir.parent / "workspace"
        self.runs: dict[str, Run] = {}
        self._submit_lock = asyncio.Lock()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{token_hex(4)}"
        self.owner_process = this_process().to_json()  # who the owner is, for other processes
        runner_types = runner_types or registry.runner_classes()
        given = runner_settings or {}  # by task type; a type not named gets its defaults
        runners = {
            name: cls(given[name]) if name in given else cls() for name, cls in runner_types.items()
        }
        # opt-in types (e.g. shell) their settings leave off, with how to switch them on
        self.disabled_types = {
            name: runner.opt_in or "its settings leave it off"
            for name, runner in runners.items()
            if not runner.enabled()
        }
        self._runners = {n: r for n, r in runners.items() if n not in self.disabled_types}
        self.max_document_bytes = max_document_bytes
        self._closed = False
        self.draining = False  # shutting down: running tasks may finish, nothing new starts
        self.lease_seconds = lease_seconds
        self.shutdown_grace = shutdown_grace
        self.output_threshold = output_threshold  # larger outputs are kept as files
        self._adopting = False  # take over runs whose owner died or whose lease expired
        self.broken: StoreError | None = None  # the state database could not be written
        self._heartbeat: asyncio.Task[None] | None = None
        self._verifying: asyncio.Task[None] | None = None  # a lapsed lease being checked
        store.on_fenced = self._on_fenced
        self._services = RunServices(
            store=store,
            runner=self.runner,
            backend=self.backend,
            secrets=self.secrets,
            redact=self.redact,
            redact_data=self.redact_data,
            resources=self.resources,
            network=self.network,
            workspace=self.workspace,
            server_pool=self.server_pool,
            max_fanout=self.max_fanout,
            output_threshold=output_threshold,
            owner=self.owner,
            owner_process=self.owner_process,
            lease_seconds=lease_seconds,
            lease_deadline=self.lease_deadline,
            draining=lambda: self.draining,
            lease_lapsed=self.lease_lapsed,
            pool_released=self.pool_released,
            store_failed=self.store_failed,
            run_finished=self.run_finished,
            run_end_listeners=self.run_end_listeners,
        )

    @classmethod
    async def open(
        cls,
        db_path: str | Path,
        runs_dir: str | Path,
        *,
        resume: bool = True,
        **options: Any,
    ) -> Engine:
        """Open the store, build the engine and (by default) resume interrupted runs."""
        store = await Store.open(db_path)
        engine = cls(store, runs_dir=Path(runs_dir), **options)
        tune_garbage_collector()  # after the runners are imported: they are start-up state
        engine._adopting = resume
        if resume:
            await engine.resume()
        engine._heartbeat = asyncio.create_task(engine._keep_leases(), name="orchestrator-leases")
        return engine

    def add_run_end_listener(self, listener: RunEndListener) -> None:
        """Have ``listener`` awaited as each run ends, after the listeners already added: once
        the run's outcome is committed and before its end is published."""
        self.run_end_listeners.append(listener)

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self, grace: float | None = None) -> None:
        """Stop accepting work, give running tasks ``grace`` seconds (default: the engine's
        shutdown grace) to finish, then interrupt the rest: their runs are released, so the
        next start (of any process) resumes them, and those tasks run again."""
        if self._closed:
            return
        self._closed = True
        self.draining = True
        for beat in (self._heartbeat, self._verifying):
            if beat is not None:
                beat.cancel()
                await asyncio.gather(beat, return_exceptions=True)
        await self._let_running_finish(self.shutdown_grace if grace is None else grace)
        workers = [worker for run in self.runs.values() for worker in run.workers()]
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        background = [task for run in list(self.runs.values()) for task in run.background_tasks()]
        await asyncio.gather(*background, return_exceptions=True)
        interrupted = list(self.runs)
        for run_id in interrupted:
            self.store.add_event(
                run_id,
                None,
                "interrupted",
                "the process stopped; unfinished tasks run again when it is resumed",
                ts=time.time(),
                level="warning",
            )
        try:
            if self.broken is None:
                await self.store.flush()
                await self.store.release(self.owner, interrupted)
        finally:
            for runner in self._runners.values():
                await runner.aclose()
            await self.network.aclose()
            await self.backend.aclose()
            await self.store.aclose()

    async def _let_running_finish(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for running tasks (and their commits) to end."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            busy = any(run.busy for run in self.runs.values())
            if not busy:
                return
            await asyncio.sleep(0.05)

    async def _keep_leases(self) -> None:
        """Renew this engine's leases; drop runs another process took; adopt orphaned ones."""
        interval = max(0.2, self.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._renew()
                if self._adopting and not self.draining:
                    await self.resume()
            except StoreError as exc:
                if "is busy" in str(exc):
                    logger.warning("could not renew leases: %s", exc)
                else:  # the database cannot be written: stop, as a failed commit does
                    self.store_failed(exc)
                    return

    async def _renew(self) -> None:
        """Renew every lease this engine holds; drop the runs another process took. A run's
        lease is known to be held until the renewal's start plus the lease, by this process's
        monotonic clock (a stall of the event loop cannot stretch it): the runs dispatch only
        until then (``Run.extend_lease``)."""
        mine = list(self.runs)
        started = asyncio.get_running_loop().time()
        kept = await self.store.renew(self.owner, mine, time.time() + self.lease_seconds)
        for run_id in mine:
            run = self.runs.get(run_id)
            if run is None:
                continue
            if run_id in kept:
                run.extend_lease(started, started + self.lease_seconds)
            else:
                self._abandon(run_id)

    def lease_lapsed(self) -> None:
        """A run found its lease past its known end (the process stalled): it starts nothing
        until the lease is renewed here, or it is dropped because another process took it."""
        if self._verifying is None or self._verifying.done():
            self._verifying = asyncio.create_task(self._verify(), name="orchestrator-lease-check")

    async def _verify(self) -> None:
        try:
            await self._renew()
        except StoreError as exc:  # the heartbeat tries again (and reports a broken store)
            logger.warning("could not check leases: %s", exc)

    def _on_fenced(self, run_ids: set[str]) -> None:
        for run_id in run_ids:
            self._abandon(run_id)

    def _abandon(self, run_id: str) -> None:
        """Another process holds this run now: stop working on it here, writing nothing
        more; whoever waits for it here is woken, and finds it taken over (``wait``)."""
        self.store.let_go(run_id)
        run = self.runs.pop(run_id, None)
        if run is None:
            return
        logger.warning(
            "orchestration %s was taken over by another process (this one stopped renewing its "
            "lease in time); it is dropped here and finishes there",
            run_id,
        )
        run.drop()

    def store_failed(self, error: StoreError) -> None:
        """The state database cannot be written: stop every run of this process, writing
        nothing more. On disk their tasks are unfinished, so the next start resumes them;
        waiting callers wake up and ``snapshot`` reports the error."""
        if self.broken is not None:
            return
        self.broken = error
        self.draining = True
        logger.error("%s; every orchestration of this process is stopped", error)
        for run in self.runs.values():
            run.halt()

    def lease_deadline(self) -> float:
        return time.time() + self.lease_seconds

    # --- what the engine can run ----------------------------------------------------------

    def redact(self, text: str) -> str:
        """``text`` with every secret value masked; applied to all the engine stores."""
        return self.secrets.redact(text) if self._redacting else text

    def redact_data(self, value: Any) -> Any:
        return redact_data(value, self.secrets.redact) if self._redacting else value

    @property
    def available_types(self) -> set[str]:
        return set(self._runners)

    @property
    def secret_fields(self) -> dict[str, frozenset[str]]:
        """Per task type, the config fields whose ``${vault.NAME}`` its runner reveals."""
        return {name: runner.secret_fields for name, runner in self._runners.items()}

    @property
    def runner_configs(self) -> dict[str, type[BaseModel]]:
        return {name: runner.config_model for name, runner in self._runners.items()}

    def runner(self, type_name: str) -> Runner:
        return self._runners[type_name]

    def runners(self) -> dict[str, Runner]:
        return dict(self._runners)

    @property
    def max_fanout(self) -> int:
        return self.max_tasks

    # --- submitting -----------------------------------------------------------------------

    def validate(
        self,
        source: Source,
        *,
        extra_vars: Mapping[str, Any] | None = None,
        require_runners: bool = False,
    ) -> Validation:
        """Check a document against this engine's runners; never raises for bad input."""
        if isinstance(source, Orchestration):
            source = RawDocument(source.model_dump(mode="json", exclude_none=True))
        return validate(
            source,
            extra_vars=extra_vars,
            available_types=self.available_types,
            require_runners=require_runners,
            runner_configs=self.runner_configs,
            secret_names=functools.partial(names_to_check, self.secrets),
            secret_fields=self.secret_fields,
            disabled_types=self.disabled_types,
            max_document_bytes=self.max_document_bytes,
            max_tasks=self.max_tasks,
        )

    async def validate_in_thread(
        self,
        source: Source,
        *,
        extra_vars: Mapping[str, Any] | None = None,
        require_runners: bool = False,
    ) -> Validation:
        """``validate`` in a worker thread: parsing and checking a large document takes seconds
        of CPU, and the event loop must keep answering (``get_status`` within ~100 ms)."""
        check = functools.partial(
            self.validate, source, extra_vars=extra_vars, require_runners=require_runners
        )
        return await cpu_bound(check)

    async def machine_warnings(self, validation: Validation) -> None:
        """Add to a valid document's issues a warning for each task type it uses that this
        machine cannot run now (no browser, say): the machine's problem, not the document's."""
        orchestration = validation.orchestration
        if orchestration is None:
            return
        first: dict[str, int] = {}
        for index, task in enumerate(orchestration.tasks):
            first.setdefault(task.type, index)
        for type_name, index in first.items():
            runner = self._runners.get(type_name)
            problem = await runner.machine_problem(self.resources) if runner else None
            if problem:
                validation.issues.append(
                    Issue(
                        f"{type_name} tasks will fail on this machine: {problem}",
                        ("tasks", index, "type"),
                        severity="warning",
                    )
                )

    async def submit(
        self,
        source: Source,
        *,
        extra_vars: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        source_name: str | None = None,
    ) -> str:
        """Validate and start an orchestration; return its id once its start is durable.

        Raises DocumentError listing every problem. With an ``idempotency_key`` already used,
        returns the existing orchestration's id and starts nothing.
        """
        existing = await self.earlier_submission(idempotency_key)
        if existing is not None:
            return existing.id
        validation = await self.validate_in_thread(
            source, extra_vars=extra_vars, require_runners=True
        )
        orchestration = validation.raise_for_errors()
        run_id, _ = await self.start(
            orchestration, idempotency_key=idempotency_key, source_name=source_name
        )
        return run_id

    async def earlier_submission(self, idempotency_key: str | None) -> OrchestrationRow | None:
        """The orchestration already started with ``idempotency_key`` (its stored document
        included), or None when there is none or no key."""
        if not idempotency_key:
            return None
        return await self.store.find_idempotent(idempotency_key)

    async def start(
        self,
        orchestration: Orchestration,
        *,
        idempotency_key: str | None = None,
        source_name: str | None = None,
    ) -> tuple[str, bool]:
        """Start an orchestration that ``validate(..., require_runners=True)`` accepted.

        Returns ``(id, existing)``: ``existing`` is true when the idempotency key was already
        used, and then the earlier orchestration's id is returned and nothing starts.
        """
        if self.broken is not None:
            raise StoreError(str(self.broken))
        if self._closed:
            raise RuntimeError("the engine is shut down")
        async with self._submit_lock:
            existing = await self.earlier_submission(idempotency_key)
            if existing is not None:
                return existing.id, True
            orchestration_id = make_run_id()
            run = await Run.build(
                self._services,
                orchestration_id,
                orchestration,
                created_at=time.time(),
                run_dir=self.runs_dir / orchestration_id,
                idempotency_key=idempotency_key,
                source=source_name,
            )
            self.store.hold(orchestration_id, 0)
            await run.persist_all()
            self.store.add_event(
                orchestration_id,
                None,
                "submitted",
                f"{orchestration.name}: {len(orchestration.tasks)} task(s), "
                f"mode {orchestration.mode}",
                ts=run.created_at,
            )
            await self.store.flush()  # durable before anything runs
            self.runs[orchestration_id] = run
            run.start()
        return orchestration_id, False

    async def resume(self, orchestration_id: str | None = None) -> list[str]:
        """Continue orchestrations a previous process left running; return their ids."""
        resumed = []
        for row in await self.store.unfinished():
            if row.id in self.runs or (orchestration_id and row.id != orchestration_id):
                continue
            gone = liveness(ProcessInfo.from_json(row.owner_process)) == Liveness.dead
            claiming = asyncio.get_running_loop().time()
            claimed = await self.store.claim(
                row.id,
                self.owner,
                self.lease_deadline(),
                time.time(),
                process=self.owner_process,
                dead_owner=row.owner if gone else None,
            )
            if not claimed:
                continue  # a live process holds its lease
            run = await self._stored_run(
                row,
                lease_valid_until=claiming + self.lease_seconds,
                started_at=row.started_at,
                max_parallel=row.max_parallel,
                # an owner that stopped gracefully released the run (owner NULL); one that did
                # not may have died because of a task: until the run ends, each attempt's start
                # is committed before its runner runs, so that a task that kills the process is
                # counted (without it, a start is committed within the group-commit delay)
                durable_starts=row.owner is not None,
            )
            died = await self.store.close_interrupted_attempts(row.id, time.time())
            rows = await self.store.load_tasks(row.id)
            given_up = await self._fail_died_twice(row.id, rows) if died else 0
            kept, again = run.restore(rows)
            failed = f", {given_up} failed: they were running when the process died twice"
            self.store.add_event(
                row.id,
                None,
                "resumed",
                f"resumed after an interruption: {kept} finished task(s) kept, "
                f"{again} interrupted task(s) will run again" + (failed if given_up else ""),
                ts=time.time(),
                level="warning",
            )
            self.runs[row.id] = run
            run.start()
            resumed.append(row.id)
        await self.store.flush()
        return resumed

    async def _fail_died_twice(self, run_id: str, rows: list[TaskRow]) -> int:
        """Fail (in ``rows`` and in the store) the unfinished tasks whose last two attempts
        ended with their process dying: started a third time, they would likely take this
        process down too. Returns how many."""
        died_twice = await self.store.died_twice(run_id)
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
            self.store.put_task(rows[index])
            self.store.add_event(run_id, task_row.task_id, "failed", message, ts=now, level="error")
            count += 1
        return count

    async def held_elsewhere(self, orchestration_id: str | None = None) -> list[HeldRun]:
        """Unfinished runs (or the one given) that another live process holds: what
        ``resume`` leaves alone, each with who holds it."""
        held = []
        for row in await self.store.unfinished():
            if row.id in self.runs or (orchestration_id and row.id != orchestration_id):
                continue
            if row.owner in (None, self.owner):
                continue
            if row.lease_until is None or row.lease_until < time.time():
                continue  # free to take: it is not held
            process = ProcessInfo.from_json(row.owner_process)
            state = liveness(process)
            if state != Liveness.dead:
                held.append(HeldRun(row.id, row.status, process, state, row.lease_until))
        return held

    async def retry(self, orchestration_id: str) -> str:
        """Run a finished orchestration's failed, skipped and cancelled tasks again.

        Succeeded tasks keep their outputs; a fan-out re-runs only its children that did not
        succeed. Returns the id (the same one).
        """
        orchestration_id = await self.resolve_id(orchestration_id)
        ending = self.runs.get(orchestration_id)
        if ending is not None and ending.ending:  # its end may be committed already: see it out
            await asyncio.shield(ending.finished.wait())
        row = await self.store.get_orchestration(orchestration_id)
        assert row is not None
        if orchestration_id in self.runs or not RunStatus(row.status).terminal:
            raise NotAllowedNow(
                f"orchestration {orchestration_id} is still {row.status}; wait for it to finish "
                "(or cancel it) before retrying"
            )
        if row.status == RunStatus.succeeded:
            raise NotAllowedNow(
                f"every task of orchestration {orchestration_id} succeeded; nothing to retry"
            )
        await self.store.flush()  # nothing of ours may overwrite the claim below
        claiming = asyncio.get_running_loop().time()
        # without it, the heartbeat would find the run owned by its last owner and drop it
        if not await self.store.claim_finished(
            orchestration_id, self.owner, self.lease_deadline(), process=self.owner_process
        ):
            raise NotAllowedNow(
                f"orchestration {orchestration_id} is already running again (another process "
                "retried or resumed it); watch it with `orchestrator status`"
            )
        rows = await self.store.load_tasks(orchestration_id)
        rerun = {r.task_id for r in rows if r.state not in (TaskState.succeeded, TaskState.pending)}
        rerun |= {r.parent_id for r in rows if r.task_id in rerun and r.parent_id}
        rows = [_fresh(r) if r.task_id in rerun else r for r in rows]
        started_at = time.time()
        run = await self._stored_run(
            row, lease_valid_until=claiming + self.lease_seconds, started_at=started_at
        )
        # from here to the flush nothing awaits: the fresh rows commit with the run's start
        for task_row in rows:
            if task_row.task_id in rerun:
                self.store.put_task(task_row)
        run.restore(rows)
        self.store.add_event(
            row.id,
            None,
            "retried",
            f"retry requested: {len(rerun)} task(s) run again, {len(rows) - len(rerun)} kept",
            ts=started_at,
        )
        self.runs[row.id] = run
        run.start()
        await self.store.flush()
        return row.id

    async def _stored_run(self, row: OrchestrationRow, **options: Any) -> Run:
        """A Run rebuilt from its stored row (to resume or retry it), what its attempts used
        counted against its budgets; ``options`` as ``Run`` takes them."""
        run = await Run.build(
            self._services,
            row.id,
            Orchestration.model_validate(row.document),
            created_at=row.created_at,
            run_dir=Path(row.run_dir) if row.run_dir else self.runs_dir / row.id,
            idempotency_key=row.idempotency_key,
            source=row.source,
            **options,
        )
        await run.restore_usage()
        return run

    # --- watching -------------------------------------------------------------------------

    async def resolve_id(self, orchestration_id: str) -> str:
        """The full id for an id or a unique prefix of one."""
        if orchestration_id in self.runs:
            return orchestration_id
        if await self.store.exists(orchestration_id):
            return orchestration_id
        matches = (
            await self.store.matching_ids(orchestration_id, limit=5) if orchestration_id else []
        )
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UnknownOrchestration(
                orchestration_id, matches, problem=f"'{orchestration_id}' matches several runs"
            )
        recent = [row.id for row in await self.store.list_orchestrations(limit=5)]
        raise UnknownOrchestration(orchestration_id, recent)

    async def snapshot(
        self, orchestration_id: str, *, include_outputs: bool = False
    ) -> RunSnapshot:
        if self.broken is not None:
            raise StoreError(str(self.broken))
        orchestration_id = await self.resolve_id(orchestration_id)
        run = self.runs.get(orchestration_id)
        if run is not None:
            return run.snapshot(include_outputs=include_outputs)
        row = await self.store.get_orchestration(orchestration_id, with_document=False)
        assert row is not None
        tasks = await self.store.load_tasks(orchestration_id)
        snapshot = _snapshot_from_rows(row, tasks, include_outputs=include_outputs)
        return await self._with_usage(snapshot, row)

    async def run_status(self, orchestration_id: str) -> RunStatus:
        """The run's own state, without reading any of its tasks."""
        orchestration_id = await self.resolve_id(orchestration_id)
        run = self.runs.get(orchestration_id)
        if run is not None:
            return run.status
        row = await self.store.get_orchestration(orchestration_id, with_document=False)
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
        if display_rows < 1:
            raise ValueError(f"display_rows must be at least 1, got {display_rows}")
        if self.broken is not None:
            raise StoreError(str(self.broken))
        choice = status_rows.StatusRows(display_rows, top, dict(rank or {}))
        row = None
        if orchestration_id not in self.runs:  # a full id needs no resolving: one read less
            row = await self.store.get_orchestration(orchestration_id, with_document=False)
        if row is None:
            orchestration_id = await self.resolve_id(orchestration_id)
        run = self.runs.get(orchestration_id)
        if run is not None:
            by_state = run.nodes_by_state()
            return run.status_snapshot(choice.pick_nodes(by_state), by_state)
        if row is None:
            row = await self.store.get_orchestration(orchestration_id, with_document=False)
        assert row is not None
        counts = await self.store.count_task_states(orchestration_id)
        if sum(counts.values()) <= choice.whole:
            rows = await self.store.load_ranked_tasks(orchestration_id)
            shown = [task_snapshot(t, has_output=has) for t, has in rows]
            return await self._with_usage(_run_snapshot(row, shown), row)
        shown = await self._stored_status_rows(orchestration_id, choice, counts)
        if len(shown) == sum(counts.values()):
            return await self._with_usage(_run_snapshot(row, shown), row)
        snapshot = _run_snapshot(row, shown, task_counts=counts)
        if counts.get(TaskState.running.value):
            snapshot.fan_outs_running = await self.store.count_running_fan_outs(orchestration_id)
        return await self._with_usage(snapshot, row)

    async def _with_usage(self, snapshot: RunSnapshot, row: OrchestrationRow) -> RunSnapshot:
        """``snapshot`` of a stored run with what its model calls used (a run with model steps;
        ``row.budget`` says whether it has them)."""
        if row.budget is not None:
            snapshot.usage = run_usage(await self.store.usage_totals(row.id), row.budget)
        return snapshot

    async def _stored_status_rows(
        self, orchestration_id: str, choice: status_rows.StatusRows, counts: dict[str, int]
    ) -> list[TaskSnapshot]:
        """The tasks ``status`` keeps of a run read from the database (``counts`` says how many
        are in each state), in document order."""
        store = self.store
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
        run = self.runs.get(orchestration_id)
        await self.wait_until_finished(orchestration_id, timeout)
        if run is not None and run.finished.is_set() and not run.taken_over and not self.broken:
            # it ended here, and committed all it holds: no need to read it back
            return run.snapshot(include_outputs=include_outputs)
        return await self.snapshot(orchestration_id, include_outputs=include_outputs)

    async def wait_until_finished(self, orchestration_id: str, timeout: float | None = None) -> str:
        """Wait as ``wait`` does, but build no snapshot; return the orchestration's full id."""
        orchestration_id = await self.resolve_id(orchestration_id)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while (run := self.runs.get(orchestration_id)) is None:
                    if self.broken is not None:
                        raise StoreError(str(self.broken))
                    row = await self.store.get_orchestration(orchestration_id, with_document=False)
                    assert row is not None
                    if RunStatus(row.status).terminal:
                        break
                    await asyncio.sleep(POLL_SECONDS)
                else:
                    await asyncio.shield(run.finished.wait())
                    if run.taken_over:  # another process finishes it: watch the database
                        return await self.wait_until_finished(orchestration_id)
        return orchestration_id

    async def cancel(self, orchestration_id: str, task_id: str | None = None) -> None:
        """Cancel a whole run, or one task of it (returning once that task is recorded
        cancelled); a finished run is left as it is."""
        orchestration_id = await self.resolve_id(orchestration_id)
        run = self.runs.get(orchestration_id)
        if run is not None:
            if task_id is None:
                run.cancel()
            else:
                if not run.has_task(task_id):
                    known = ", ".join(run.task_ids()[:20])
                    raise UnknownTask(
                        f"orchestration {orchestration_id} has no task '{task_id}'; tasks: {known}"
                    )
                # return once the task is recorded cancelled, so what the caller reads next
                # says so; a runner slow to stop is given CANCEL_WAIT
                workers = run.cancel_task(task_id)
                if workers:
                    await asyncio.wait(workers, timeout=CANCEL_WAIT)

    async def list(
        self, status: str | None = None, limit: int = 50
    ) -> builtins.list[OrchestrationRow]:
        return await self.store.list_orchestrations(status, limit)

    async def events(self, orchestration_id: str, after_seq: int = 0) -> builtins.list[Any]:
        orchestration_id = await self.resolve_id(orchestration_id)
        await self.store.flush()
        return await self.store.load_events(orchestration_id, after_seq)

    # --- called by runs -------------------------------------------------------------------

    def pool_released(self, releasing: RunHandle) -> None:
        """A slot came free; runs waiting on the server-wide pool may start something."""
        for run in self.runs.values():
            if run is not releasing:
                run.kick()

    def run_finished(self, run: RunHandle) -> None:
        if self.runs.get(run.id) is run:
            del self.runs[run.id]


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


def _snapshot_from_rows(
    row: OrchestrationRow, tasks: list[TaskRow], *, include_outputs: bool
) -> RunSnapshot:
    return _run_snapshot(
        row,
        [
            task_snapshot(
                task,
                output=outputs.load(task.output_json, row.run_dir) if include_outputs else None,
            )
            for task in tasks
        ],
    )


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


__all__ = ["DocumentError", "Engine", "UnknownOrchestration", "UnknownTask"]
