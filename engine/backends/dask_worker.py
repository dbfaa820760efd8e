"""The worker side of the Dask backend: the worker plugin and the functions Dask runs on workers.

``OrchestratorPlugin`` holds one instance of each runner type per worker and per distinct
settings (so the browser pool and the HTTP client live on the worker and are reused by every
attempt it runs), made with the server's runner settings that come with each attempt, a
semaphore for the worker's concurrency, and the attempts running now by key, so the server can
cancel one (``cancel_on_worker``) — cancelling a Dask future does not stop a coroutine already
running.
``run_on_worker`` is the ``async def`` the server submits; it runs on the worker's event loop.
``serve_worker`` runs a worker with the plugin (``orchestrator worker``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import tempfile
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distributed import Worker, get_worker
from distributed.comm import parse_address
from distributed.comm.addressing import parse_host_port
from distributed.diagnostics.plugin import WorkerPlugin

from multi_task_orchestrator.engine import registry
from multi_task_orchestrator.engine.backends.shipping import (
    AttemptRequest,
    AttemptResult,
    LogLine,
    collect_files,
)
from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.facade_errors import RequestError
from multi_task_orchestrator.engine.network import HostLimits, Network
from multi_task_orchestrator.engine.runners.base import RunContext, Runner
from multi_task_orchestrator.engine.usage import Totals, UsageRecord

PLUGIN_NAME = "multi-task-orchestrator"
STARTED_EVENT = "multi-task-orchestrator-started-{key}"
CANCEL_WAIT_SECONDS = 10.0
REMEMBERED = 1000  # finished attempts kept in the plugin's record

logger = logging.getLogger("orchestrator.worker")


@dataclass(slots=True)
class AttemptRecord:
    """How an attempt ended on this worker (``cancelled`` proves a cancel reached it)."""

    key: str
    orchestration_id: str
    task_id: str
    attempt: int
    outcome: str
    finished_at: float


class OrchestratorPlugin(WorkerPlugin):
    """Runners, concurrency and cancellation for the attempts one worker runs.

    ``concurrency`` caps the attempts running at once on the worker (default: its thread
    count). Runners get the server's settings, sent with each attempt; ``runner_settings`` (by
    task type) are the ones this worker sets itself, which win (e.g. the browser's path on this
    machine). ``workspace`` is the folder file_processing tasks use there (default: the folder
    the server names, which assumes a shared file system).
    """

    name = PLUGIN_NAME

    def __init__(
        self,
        *,
        concurrency: int | None = None,
        runner_settings: Mapping[str, Mapping[str, Any]] | None = None,
        workspace: Path | None = None,
    ) -> None:
        if concurrency is not None and concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.concurrency = concurrency
        self.runner_settings = {
            name: dict(values) for name, values in (runner_settings or {}).items()
        }
        self.workspace = workspace

    # --- lifecycle ----------------------------------------------------------------------------

    async def setup(self, worker: Worker) -> None:
        self.address = worker.address
        self.runners: dict[tuple[str, str], Runner] = {}  # by type and settings (as JSON)
        self.resources: dict[str, Any] = {}
        self.semaphore = asyncio.Semaphore(self.concurrency or worker.state.nthreads)
        self.running: dict[str, asyncio.Task[AttemptResult]] = {}
        self.cancel_requested: OrderedDict[str, float] = OrderedDict()
        self.records: OrderedDict[str, AttemptRecord] = OrderedDict()
        self._networks: dict[tuple[Any, ...], Network] = {}

    async def teardown(self, worker: Worker) -> None:
        for task in list(self.running.values()):
            task.cancel()
        await asyncio.gather(*self.running.values(), return_exceptions=True)
        for runner in self.runners.values():
            with contextlib.suppress(Exception):
                await runner.aclose()
        for network in self._networks.values():
            await network.aclose()

    # --- attempts ------------------------------------------------------------------------------

    async def run(self, request: AttemptRequest) -> AttemptResult:
        if request.key in self.cancel_requested:  # the cancel overtook the attempt
            return self._finish(request, AttemptResult(request.key, "cancelled", self.address))
        async with self.semaphore:
            if request.key in self.cancel_requested:  # cancelled while waiting for a slot
                return self._finish(request, AttemptResult(request.key, "cancelled", self.address))
            task = asyncio.create_task(self._attempt(request), name=f"attempt {request.key}")
            self.running[request.key] = task
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.done():  # Dask itself stops the coroutine (e.g. the worker closes)
                    task.cancel()
                    raise
                return self._finish(request, AttemptResult(request.key, "cancelled", self.address))
            finally:
                self.running.pop(request.key, None)

    async def cancel(self, key: str) -> bool:
        """Stop attempt ``key`` if it runs here (or keep it from starting); True if it ran."""
        self.cancel_requested[key] = time.time()
        while len(self.cancel_requested) > REMEMBERED:
            self.cancel_requested.popitem(last=False)
        task = self.running.get(key)
        if task is None:
            return False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), CANCEL_WAIT_SECONDS)
        return True

    async def _attempt(self, request: AttemptRequest) -> AttemptResult:
        logs: list[LogLine] = []
        result = AttemptResult(request.key, "failed", self.address, logs=logs)
        used = Totals()

        def on_usage(record: UsageRecord) -> None:
            used.add(record)
            result.usage.append(record)

        budget = request.budget
        with tempfile.TemporaryDirectory(prefix="orchestrator-attempt-") as folder:
            run_dir = Path(folder)
            try:
                runner = self._runner(request)
                ctx = RunContext(
                    orchestration_id=request.orchestration_id,
                    task_id=request.task_id,
                    attempt=request.attempt,
                    run_dir=run_dir,
                    secrets=request.secrets,
                    log_sink=lambda level, message, data: logs.append((level, message, data)),
                    resources=self.resources,
                    secret_names=request.secret_names,
                    network=self._network(request),
                    workspace=self.workspace or _path(request.workspace),
                    item=request.item,
                    index=request.index,
                    usage_sink=on_usage,
                    budget_probe=(lambda: budget.after(used)) if budget is not None else None,
                )
                result.output = await runner.run(runner.parse_config(request.config), ctx)
                result.outcome = "succeeded"
            except asyncio.CancelledError:
                self._finish(request, AttemptResult(request.key, "cancelled", self.address))
                logger.info("attempt %s cancelled on %s", request.key, self.address)
                raise
            except TaskError as exc:
                result.error, result.error_class = exc.message, exc.error_class
                result.retry_after = exc.retry_after
            except Exception as exc:
                result.error, result.error_class = f"{type(exc).__name__}: {exc}", "error"
            result.artifacts = collect_files(run_dir)
        result.saved_secrets = list(request.secrets.saved)
        return self._finish(request, result)

    def _runner(self, request: AttemptRequest) -> Runner:
        """The attempt's runner, with the server's settings under this worker's own."""
        type_name = request.runner_type
        runner_class = registry.runner_classes().get(type_name)
        if runner_class is None:
            raise TaskError(
                f"the worker {self.address} has no '{type_name}' runner; install the same "
                "version of multi-task-orchestrator on the workers as on the server",
                "config",
            )
        given = {**(request.settings or {}), **self.runner_settings.get(type_name, {})}
        settings = runner_class.make_settings(given)
        key = (type_name, settings.model_dump_json() if settings is not None else "")
        runner = self.runners.get(key)
        if runner is None:
            runner = runner_class(settings) if settings is not None else runner_class()
            self.runners[key] = runner
        return runner

    def _network(self, request: AttemptRequest) -> Network:
        """One network (policy, host limits, HTTP client) per distinct server setting."""
        policy = request.policy
        signature = (
            tuple(policy.allow),
            tuple(policy.deny),
            policy.block_private,
            policy.allow_link_local,
            request.per_host,
            tuple(sorted((host, str(rate)) for host, rate in request.rates.items())),
        )
        network = self._networks.get(signature)
        if network is None:
            limits = HostLimits(request.per_host, dict(request.rates))
            network = self._networks[signature] = Network(policy, limits)
        return network

    def _finish(self, request: AttemptRequest, result: AttemptResult) -> AttemptResult:
        self.records[request.key] = AttemptRecord(
            request.key,
            request.orchestration_id,
            request.task_id,
            request.attempt,
            result.outcome,
            time.time(),
        )
        while len(self.records) > REMEMBERED:
            self.records.popitem(last=False)
        return result


def _path(text: str | None) -> Path | None:
    return Path(text) if text else None


def _plugin(worker: Worker) -> OrchestratorPlugin:
    plugin = worker.plugins.get(PLUGIN_NAME)
    if not isinstance(plugin, OrchestratorPlugin):
        raise TaskError(
            f"the Dask worker {worker.address} was not started with 'orchestrator worker' "
            "(the project's worker plugin is missing); start workers with "
            "'orchestrator worker --scheduler ADDRESS'",
            "config",
        )
    return plugin


async def run_on_worker(request: AttemptRequest) -> AttemptResult:
    """Run one attempt on this worker's event loop (submitted by ``DaskBackend``).

    An attempt runs at most once: Dask runs a task again elsewhere when its worker dies, so the
    first start is marked on the scheduler and a second start reports ``lost`` instead of
    repeating the work — the server's retry policy decides what happens next.
    """
    worker = get_worker()
    try:
        plugin = _plugin(worker)
    except TaskError as exc:
        return AttemptResult(request.key, "failed", worker.address, None, exc.message, "config")
    event = STARTED_EVENT.format(key=request.key)
    if await worker.scheduler.event_is_set(name=event):
        return AttemptResult(request.key, "lost", worker.address)
    await worker.scheduler.event_set(name=event)
    return await plugin.run(request)


async def cancel_on_worker(key: str, dask_worker: Worker) -> bool:
    """Stop attempt ``key`` on this worker (run through ``Client.run``); True if it was running."""
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    if not isinstance(plugin, OrchestratorPlugin):
        return False
    return await plugin.cancel(key)


def worker_status(dask_worker: Worker) -> dict[str, Any]:
    """The attempts running on this worker and how recent ones ended (through ``Client.run``)."""
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    if not isinstance(plugin, OrchestratorPlugin):
        return {"plugin": False, "running": [], "records": []}
    return {
        "plugin": True,
        "running": sorted(plugin.running),
        "records": [
            {
                "key": record.key,
                "orchestration_id": record.orchestration_id,
                "task_id": record.task_id,
                "attempt": record.attempt,
                "outcome": record.outcome,
            }
            for record in plugin.records.values()
        ],
    }


def _check_address(scheduler: str) -> None:
    """Refuse an address Dask cannot read before a worker is made: the worker fails to
    start with a traceback of its own in its log (a reachable-looking address that nobody
    answers is waited for, as Dask's workers do)."""
    try:
        scheme, location = parse_address(scheduler)
        if scheme in ("tcp", "tls") and not 0 < parse_host_port(location)[1] < 65536:
            raise ValueError("the port must be between 1 and 65535")
    except ValueError as exc:
        raise RequestError(
            f"cannot use the Dask scheduler address '{scheduler}': {exc}; "
            "write it like tcp://HOST:8786 (--scheduler or ORCHESTRATOR_DASK_SCHEDULER)"
        ) from None


async def serve_worker(
    scheduler: str,
    *,
    concurrency: int = 8,
    runner_settings: Mapping[str, Mapping[str, Any]] | None = None,
    workspace: Path | None = None,
    name: str | None = None,
) -> None:
    """Run a Dask worker with the project's plugin until Ctrl-C, SIGTERM or the scheduler
    closes it. ``concurrency`` is both Dask's task slots and the plugin's limit;
    ``runner_settings`` are the worker's own (see ``OrchestratorPlugin``)."""
    _check_address(scheduler)
    plugin = OrchestratorPlugin(
        concurrency=concurrency, runner_settings=runner_settings, workspace=workspace
    )
    async with Worker(scheduler, nthreads=concurrency, name=name, plugins=(plugin,)) as worker:
        loop = asyncio.get_running_loop()
        closing: list[asyncio.Task[Any]] = []
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(
                    signal_number, lambda: closing.append(asyncio.create_task(worker.close()))
                )
        await worker.finished()
