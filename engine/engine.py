"""The engine: one per process; submits, watches, cancels and resumes orchestrations.

This is the whole API the CLI and the MCP tools use. It owns the store, the runners, the
server-wide slot pool and the runs in progress; each run schedules itself (``engine.run``).
The engine is a facade over collaborators, each in its own module and given only what it
needs: ``runner_set`` (this engine's runners), ``leases`` (renewing this process's leases,
adopting orphaned runs, letting go of runs taken over), ``recovery`` (resume and retry),
``status_reads`` (ids, snapshots, status, waiting) and ``shutdown`` (interrupting runs).
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from secrets import token_hex
from typing import Any

from pydantic import BaseModel

from multi_task_orchestrator.engine import outputs, registry
from multi_task_orchestrator.engine.after_end import AfterEnd
from multi_task_orchestrator.engine.approvals import ApprovalDesk, Decision
from multi_task_orchestrator.engine.backends import Backend
from multi_task_orchestrator.engine.backends.local import LocalBackend
from multi_task_orchestrator.engine.checking import DocumentChecker, Source
from multi_task_orchestrator.engine.cpu_work import cpu_bound
from multi_task_orchestrator.engine.document.loader import MAX_DOCUMENT_BYTES
from multi_task_orchestrator.engine.document.models import Orchestration
from multi_task_orchestrator.engine.document.validation import Validation
from multi_task_orchestrator.engine.facade_errors import (
    IdempotencyConflict,
    NotAllowedNow,
    UnknownOrchestration,
    UnknownTask,
)
from multi_task_orchestrator.engine.gc_policy import tune_garbage_collector
from multi_task_orchestrator.engine.issues import DocumentError
from multi_task_orchestrator.engine.leases import LeaseKeeper
from multi_task_orchestrator.engine.network import Network
from multi_task_orchestrator.engine.notify.delivery import Notifier
from multi_task_orchestrator.engine.owner import HeldRun, this_process
from multi_task_orchestrator.engine.pools import Pool
from multi_task_orchestrator.engine.recovery import Recovery
from multi_task_orchestrator.engine.reports.run_end import write_files_on_run_end
from multi_task_orchestrator.engine.run import Run, RunHandle, RunServices, make_run_id
from multi_task_orchestrator.engine.run_end import RunEndListener
from multi_task_orchestrator.engine.runner_set import RunnerSet
from multi_task_orchestrator.engine.runners.base import Runner
from multi_task_orchestrator.engine.secrets import (
    NoVault,
    SecretResolver,
    mend_surrogates,
    redact_data,
)
from multi_task_orchestrator.engine.shutdown import interrupt_runs
from multi_task_orchestrator.engine.state import RunSnapshot, RunStatus, TaskState
from multi_task_orchestrator.engine.status_reads import StatusReads
from multi_task_orchestrator.engine.store import ApprovalRow, OrchestrationRow, Store, StoreError

DEFAULT_MAX_CONCURRENT = 64
DEFAULT_MAX_TASKS = 10_000
DEFAULT_LEASE_SECONDS = 15.0  # a run whose owner stops renewing is taken over after this long
DEFAULT_SHUTDOWN_GRACE = 10.0
CANCEL_WAIT = 5.0  # seconds a cancelled task's runner is given to stop before cancel returns

logger = logging.getLogger("orchestrator.engine")


class Engine:
    """Open with ``await Engine.open(db_path, runs_dir)`` (or ``async with``).

    Longer than the ~300 lines a class should stay under, for a reason: it is the facade, the
    API the CLI, the tools and the tests call — some 35 methods and properties, each keeping
    its signature and docstring here, most delegating in a line — and its constructor wires
    the collaborators. What is left inline is short: validating and starting a document,
    cancelling, and closing.
    """

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
        notify_url: str | None = None,
    ) -> None:
        self.store = store
        self.runs_dir = runs_dir
        self.max_tasks = max_tasks
        self.secrets: SecretResolver = secrets or NoVault()
        self._redacting = not isinstance(self.secrets, NoVault)
        self.network = network or Network()
        # the documents' notify: channels; notify_url is the one ``notify: true`` means
        self.notifier = Notifier(store, self.network, self.secrets, self.redact, notify_url)
        # awaited in order as each run ends, before its end is published; by default the
        # notifications, then the writer of the run's files (results, log, summary, report.html)
        default_listeners = (self.notifier.on_run_end, write_files_on_run_end)
        self.run_end_listeners: list[RunEndListener] = list(
            default_listeners if run_end_listeners is None else run_end_listeners
        )
        self.server_pool = Pool("server", max_concurrent, kind="server")
        # shared objects runners find in ctx.resources (settings go to each runner instead)
        self.resources: dict[str, Any] = dict(resources or {})
        self.backend: Backend = backend or LocalBackend()
        self.workspace = workspace or runs_dir.parent / "workspace"
        self.runs: dict[str, Run] = {}  # the runs this process executes, by id
        self._submit_lock = asyncio.Lock()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{token_hex(4)}"
        self.owner_process = this_process().to_json()  # who the owner is, for other processes
        self._runners = RunnerSet(runner_types or registry.runner_classes(), runner_settings or {})
        self.disabled_types = self._runners.disabled
        self.max_document_bytes = max_document_bytes
        self.checker = DocumentChecker(
            self._runners,
            self.secrets,
            max_tasks=max_tasks,
            max_document_bytes=max_document_bytes,
            resources=self.resources,
        )
        self._closed = False
        self.draining = False  # shutting down: running tasks may finish, nothing new starts
        self.lease_seconds = lease_seconds
        self.shutdown_grace = shutdown_grace
        self.output_threshold = output_threshold  # larger outputs are kept as files
        self.broken: StoreError | None = None  # the state database could not be written
        self._leases = LeaseKeeper(
            store,
            self.runs,
            owner=self.owner,
            lease_seconds=lease_seconds,
            draining=lambda: self.draining,
            store_failed=self.store_failed,
        )
        store.on_fenced = self._leases.fenced
        # where approval tasks wait; a new request sends the run's approval_needed event
        self.approvals = ApprovalDesk(store, redact=self.redact, announce=self._approval_needed)
        self._after_end = AfterEnd()  # what runs' ends leave to do (their reports)
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
            lease_deadline=self._leases.deadline,
            draining=lambda: self.draining,
            lease_lapsed=self._leases.lapsed,
            pool_released=self.pool_released,
            store_failed=self.store_failed,
            run_finished=self.run_finished,
            run_end_listeners=self.run_end_listeners,
            after_end=self._after_end.start,
            notifier=self.notifier,
            approvals=self.approvals,
        )
        self._recovery = Recovery(self._services, self.runs, runs_dir)
        self._reads = StatusReads(store, self.runs, lambda: self.broken)

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
        tune_garbage_collector()  # what exists now (modules, schemas) is start-up state
        if resume:
            await engine.resume()
        # with resume, each beat also adopts runs whose owner died or whose lease expired
        engine._leases.start(engine.resume if resume else None)
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
        await self._leases.stop()
        grace = self.shutdown_grace if grace is None else grace
        interrupted = await interrupt_runs(self.runs, self.store, grace)
        await self._after_end.aclose()
        await self.approvals.aclose()
        try:
            if self.broken is None:
                await self.store.flush()
                await self.store.release(self.owner, interrupted)
        finally:
            await self._runners.aclose()
            await self.network.aclose()
            await self.backend.aclose()
            await self.store.aclose()

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

    # --- what the engine can run ----------------------------------------------------------

    def redact(self, text: str) -> str:
        """``text`` with every secret value masked (and any half of a surrogate pair, which
        no UTF-8 text can hold, replaced); applied to all the engine stores."""
        text = mend_surrogates(text)
        return self.secrets.redact(text) if self._redacting else text

    def redact_data(self, value: Any) -> Any:
        return redact_data(value, self.redact) if self._redacting else value

    @property
    def available_types(self) -> set[str]:
        return self._runners.types

    @property
    def secret_fields(self) -> Mapping[str, frozenset[str]]:
        """Per task type, the config fields whose ``${vault.NAME}`` its runner reveals."""
        return self._runners.secret_fields

    @property
    def runner_configs(self) -> Mapping[str, type[BaseModel]]:
        return self._runners.configs

    def runner(self, type_name: str) -> Runner:
        return self._runners.get(type_name)

    def runners(self) -> dict[str, Runner]:
        return self._runners.all()

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
        return self.checker.validate(source, extra_vars=extra_vars, require_runners=require_runners)

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
        await self.checker.machine_warnings(validation)

    async def submit(
        self,
        source: Source,
        *,
        extra_vars: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        source_name: str | None = None,
    ) -> str:
        """Validate and start an orchestration; return its id once its start is durable.

        Raises DocumentError listing every problem. With an ``idempotency_key`` already used
        for the same document, returns the existing orchestration's id and starts nothing; for
        another document, raises ``IdempotencyConflict``.
        """
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
        used for the same document, and then the earlier orchestration's id is returned and
        nothing starts; the key used for another document raises ``IdempotencyConflict``.
        """
        if self.broken is not None:
            raise StoreError(str(self.broken))
        if self._closed:
            raise RuntimeError("the engine is shut down")
        async with self._submit_lock:
            existing = await self.earlier_submission(idempotency_key)
            if existing is not None:
                _same_document(existing, orchestration)
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
            self.runs[orchestration_id] = run
            # its ready tasks are queued now, so their rows join the run's first commit; none
            # is dispatched until that commit is durable
            run.start(held=True)
            committing = asyncio.ensure_future(self.store.flush())
            try:
                await asyncio.shield(committing)
            except asyncio.CancelledError:
                # the caller gave up while the run's rows were on their way to the disk: once
                # they are there, the run is cancelled (none of its tasks ran), not left running
                committing.add_done_callback(functools.partial(self._abandoned, run))
                raise
            except BaseException:
                self.runs.pop(orchestration_id, None)
                raise
            run.release()
        return orchestration_id, False

    def _abandoned(self, run: Run, committing: asyncio.Future[None]) -> None:
        """The submission of ``run`` was cancelled during its first commit, which is now done:
        the run is cancelled (or forgotten, when that commit failed)."""
        if committing.cancelled() or committing.exception() is not None:
            self.runs.pop(run.id, None)
            return
        run.cancel("cancelled: its submission was cancelled before it returned an id")
        run.release()

    # --- taking runs up again -------------------------------------------------------------

    async def resume(self, orchestration_id: str | None = None) -> list[str]:
        """Continue orchestrations a previous process left running; return their ids."""
        return await self._recovery.resume(orchestration_id)

    async def held_elsewhere(self, orchestration_id: str | None = None) -> list[HeldRun]:
        """Unfinished runs (or the one given) that another live process holds: what
        ``resume`` leaves alone, each with who holds it."""
        return await self._recovery.held_elsewhere(orchestration_id)

    async def retry(self, orchestration_id: str) -> str:
        """Run a finished orchestration's failed, skipped and cancelled tasks again.

        Succeeded tasks keep their outputs; a fan-out re-runs only its children that did not
        succeed. Returns the id (the same one).
        """
        return await self._recovery.retry(await self.resolve_id(orchestration_id))

    # --- watching -------------------------------------------------------------------------

    async def resolve_id(self, orchestration_id: str) -> str:
        """The full id for an id or a unique prefix of one."""
        return await self._reads.resolve_id(orchestration_id)

    async def snapshot(
        self, orchestration_id: str, *, include_outputs: bool = False
    ) -> RunSnapshot:
        return await self._reads.snapshot(orchestration_id, include_outputs=include_outputs)

    async def run_status(self, orchestration_id: str) -> RunStatus:
        """The run's own state, without reading any of its tasks."""
        return await self._reads.run_status(orchestration_id)

    async def status(
        self,
        orchestration_id: str,
        *,
        display_rows: int,
        top: int = 0,
        rank: Mapping[TaskState, int] | None = None,
    ) -> RunSnapshot:
        """The run as a status shows it, without building a snapshot of every task: every
        task counted, only the rows shown built (see ``StatusReads.status``)."""
        return await self._reads.status(
            orchestration_id, display_rows=display_rows, top=top, rank=rank
        )

    async def wait(
        self, orchestration_id: str, timeout: float | None = None, *, include_outputs: bool = False
    ) -> RunSnapshot:
        """Wait until the run ends or ``timeout`` seconds pass; return the status reached.

        A run of this process is awaited; one another process runs is polled in the database.
        """
        return await self._reads.wait(orchestration_id, timeout, include_outputs=include_outputs)

    async def settled(self, orchestration_id: str) -> None:
        """Return once what the run's end left to do in this process is done: its
        ``report.html`` is written after the end is published. Whoever lists or reads the
        files of a run that just finished waits for this first."""
        await self._after_end.settled(orchestration_id)

    async def wait_until_finished(self, orchestration_id: str, timeout: float | None = None) -> str:
        """Wait as ``wait`` does, but build no snapshot; return the orchestration's full id."""
        return await self._reads.wait_until_finished(orchestration_id, timeout)

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

    # --- approvals ------------------------------------------------------------------------

    async def approve(
        self, orchestration_id: str, task_id: str, *, note: str | None = None, by: str = "api"
    ) -> ApprovalRow:
        """Approve a waiting ``approval`` task (of a run of any process): it succeeds. Raises
        UnknownTask, or NotAllowedNow naming the state when it is not waiting."""
        return await self._decide(orchestration_id, task_id, "approved", note=note, by=by)

    async def reject(
        self, orchestration_id: str, task_id: str, *, note: str | None = None, by: str = "api"
    ) -> ApprovalRow:
        """Reject a waiting ``approval`` task: it fails with class ``rejected`` (never
        retried), and its dependents are skipped as after any failure."""
        return await self._decide(orchestration_id, task_id, "rejected", note=note, by=by)

    async def _decide(
        self, orchestration_id: str, task_id: str, decision: Decision, *, note: str | None, by: str
    ) -> ApprovalRow:
        run_id = await self.resolve_id(orchestration_id)
        run = self.runs.get(run_id)
        live = run.state_of(task_id) if run is not None else None
        return await self.approvals.decide(
            run_id, task_id, decision, note=note, decided_by=by, live=live
        )

    async def pending_approvals(
        self, orchestration_id: str | None = None
    ) -> builtins.list[ApprovalRow]:
        """The approval tasks waiting for a decision (of one run, or of every run)."""
        run_id = None if orchestration_id is None else await self.resolve_id(orchestration_id)
        return await self.approvals.waiting(run_id)

    async def _approval_needed(self, row: ApprovalRow) -> None:
        run = self.runs.get(row.orchestration_id)
        if run is not None:
            await self.notifier.approval_needed(run.spec, row)

    # --- called by runs -------------------------------------------------------------------

    def pool_released(self, releasing: RunHandle) -> None:
        """A slot came free; runs waiting on the server-wide pool may start something."""
        for run in self.runs.values():
            if run is not releasing:
                run.kick()

    def run_finished(self, run: RunHandle) -> None:
        if self.runs.get(run.id) is run:
            del self.runs[run.id]


def _same_document(earlier: OrchestrationRow, orchestration: Orchestration) -> None:
    """Refuse a submission whose idempotency key started a run of another document."""
    stored = earlier.document or {}
    document = orchestration.model_dump(mode="json", exclude_none=True)
    if stored == document:
        return
    fields = sorted(
        name for name in stored.keys() | document.keys() if stored.get(name) != document.get(name)
    )
    raise IdempotencyConflict(earlier.idempotency_key or "", earlier.id, fields)


__all__ = [
    "DocumentError",
    "Engine",
    "IdempotencyConflict",
    "NotAllowedNow",
    "UnknownOrchestration",
    "UnknownTask",
]
