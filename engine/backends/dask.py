"""The Dask backend: each attempt runs on a worker of a Dask distributed cluster.

The scheduler, the state and the vault stay in the server; the backend ships one attempt at a
time (``engine.backends.shipping``) to ``run_on_worker``, an ``async def`` Dask runs on a
worker's event loop, through the asynchronous client, and awaits the result — never polls.

- Settings: the runner's settings on the server go with each attempt, so the worker's runner
  runs with the server's limits and switches, not its defaults (a setting the worker sets in
  its own environment wins there: the browser's path on that machine).
- Secrets: exactly the ones the task's config names (and a browser task's ``session``) are
  resolved here and sent with that attempt, each with its allowed hosts; the worker enforces the
  hosts and keeps nothing after the attempt. A session a runner saves on the worker comes back
  and is stored in the server's vault.
- Logs come back with the result and are replayed into the run's event log; the model usage the
  runner recorded is counted here (against the attempt, the task, the run and its budgets —
  for a failed attempt too); files written to the artifacts folder come back as bytes and are
  written to the server's run folder. The budgets travel as what they left the task when the
  attempt started: ``ctx.budget_left()`` on the worker subtracts what the attempt used since.
- Errors: a ``TaskError`` on the worker is raised here with the same class, message and
  ``retry_after``. A worker that dies mid-attempt fails the attempt with class ``network``
  ("worker lost"), so the task's retry policy runs it again on another worker.
- Cancelling (timeout, cancel, shutdown) cancels the Dask future and, because that does not
  stop a coroutine already running, cancels the attempt on the workers themselves.

The backend is stateless: what ran and what is left lives in SQLite, so a restarted server
resumes as with the local backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from secrets import token_hex
from typing import Any

from distributed import Client, Event
from distributed.client import ClosedClientError, FutureCancelledError
from distributed.comm.core import CommClosedError
from distributed.scheduler import KilledWorker
from pydantic import BaseModel

from multi_task_orchestrator.engine.backends.dask_worker import (
    STARTED_EVENT,
    cancel_on_worker,
    run_on_worker,
)
from multi_task_orchestrator.engine.backends.shipping import (
    AttemptRequest,
    AttemptResult,
    ShippedSecrets,
    write_files,
)
from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.runners.base import RunContext, Runner
from multi_task_orchestrator.engine.secrets import NoVault, SecretResolver

CONNECT_TIMEOUT_SECONDS = 10.0
CANCEL_TIMEOUT_SECONDS = 15.0
WORKER_LOST = (
    "worker lost: the Dask worker running this attempt died or left the cluster before it finished"
)


class _CancellationIsNoError(logging.Filter):
    """Drops the traceback Dask's client logs when closing it cancels its reconnecting to a
    scheduler that went away (``log_errors`` treats the cancellation as an error)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc_info = record.exc_info
        return not (exc_info and isinstance(exc_info[1], asyncio.CancelledError))


_CLIENT_LOG = logging.getLogger("distributed.client")
_CLIENT_LOG.addFilter(_CancellationIsNoError())


class DaskBackend:
    """Runs attempts on the Dask cluster whose scheduler listens at ``scheduler_address``.

    Connects on first use (or ``await backend.connect()``); one asynchronous client serves
    every attempt.
    """

    def __init__(
        self, scheduler_address: str, *, connect_timeout: float = CONNECT_TIMEOUT_SECONDS
    ) -> None:
        self.scheduler_address = scheduler_address
        self.connect_timeout = connect_timeout
        self._client: Client | None = None
        self._connecting = asyncio.Lock()

    async def connect(self) -> Client:
        """The client, connecting first if needed; TaskError (class network) if it cannot."""
        async with self._connecting:
            if self._client is not None and self._client.status in ("closing", "closed"):
                # it gave up reconnecting to a scheduler that went away: try afresh
                stale, self._client = self._client, None
                with contextlib.suppress(Exception):
                    await stale.close()
            if self._client is None:
                try:
                    self._client = await Client(
                        self.scheduler_address,
                        asynchronous=True,
                        timeout=self.connect_timeout,
                        set_as_default=False,
                    )
                except (OSError, TimeoutError, CommClosedError, ValueError) as exc:
                    raise TaskError(
                        f"cannot reach the Dask scheduler at {self.scheduler_address}: {exc}; "
                        "start it with 'dask scheduler' and workers with 'orchestrator worker "
                        "--scheduler ADDRESS', or correct the address (--scheduler or "
                        "ORCHESTRATOR_DASK_SCHEDULER)",
                        "network",
                    ) from None
            return self._client

    async def run_attempt(self, runner: Runner, config: BaseModel, ctx: RunContext) -> Any:
        client = await self.connect()
        request = await _request(runner, config, ctx)
        try:
            future = client.submit(run_on_worker, request, key=request.key, pure=False, retries=0)
        except ClosedClientError:
            raise TaskError(self._lost_scheduler("the client gave up"), "network") from None
        try:
            result: AttemptResult = await future
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    asyncio.shield(self._cancel(client, future, request.key)),
                    CANCEL_TIMEOUT_SECONDS,
                )
            raise
        except KilledWorker:
            raise TaskError(WORKER_LOST, "network") from None
        except FutureCancelledError as exc:
            lost = getattr(exc, "reason", None) == "scheduler-connection-lost"
            if lost or client.status in ("connecting", "closing", "closed"):
                raise TaskError(self._lost_scheduler("the connection closed"), "network") from None
            raise TaskError("the attempt was cancelled on the Dask cluster", "network") from None
        except ClosedClientError:
            raise TaskError(self._lost_scheduler("the client gave up"), "network") from None
        except (OSError, CommClosedError) as exc:
            raise TaskError(self._lost_scheduler(str(exc)), "network") from None
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(_forget(client, request.key))
        return await _deliver(result, ctx)

    def _lost_scheduler(self, why: str) -> str:
        return (
            f"lost the connection to the Dask scheduler at {self.scheduler_address}: {why}; "
            "the attempt may have been running on a worker (check that the scheduler is up)"
        )

    async def _cancel(self, client: Client, future: Any, key: str) -> None:
        """Stop the attempt wherever it runs, then drop the future; the scheduler would only
        stop it from starting."""
        await client.run(cancel_on_worker, key, on_error="ignore")
        await future.cancel()

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


async def _forget(client: Client, key: str) -> None:
    await Event(STARTED_EVENT.format(key=key), client=client).clear()


async def _request(runner: Runner, config: BaseModel, ctx: RunContext) -> AttemptRequest:
    network = ctx.network
    return AttemptRequest(
        key=f"orchestrator-{ctx.orchestration_id}-{ctx.task_id}-{ctx.attempt}-{token_hex(4)}",
        runner_type=runner.type_name,
        settings=runner.settings.model_dump(mode="json") if runner.settings is not None else None,
        config=config.model_dump(mode="json", by_alias=True, exclude_unset=True),
        orchestration_id=ctx.orchestration_id,
        task_id=ctx.task_id,
        attempt=ctx.attempt,
        item=ctx.item,
        index=ctx.index,
        secrets=await ship_secrets(ctx.secrets, _secrets_needed(config, ctx)),
        secret_names=ctx.secret_names,
        policy=network.policy,
        per_host=network.host_limits.per_host,
        rates=dict(network.host_limits.rates),
        workspace=str(ctx.workspace) if ctx.workspace is not None else None,
        budget=ctx.budget_left(),
    )


def _secrets_needed(config: BaseModel, ctx: RunContext) -> set[str]:
    """The names the task's config references, plus a browser task's stored ``session``."""
    names = set(ctx.secret_names or ())
    session = getattr(config, "session", None)
    if isinstance(session, str):
        names.add(session)
    return names


async def ship_secrets(resolver: SecretResolver, names: set[str]) -> ShippedSecrets:
    """The values (with their allowed hosts) of ``names`` to send with one attempt.

    The resolver must offer ``export(name) -> (value, allowed_hosts)`` (the vault's does); a
    name it cannot give is sent as the reason, raised on the worker if the runner uses it.
    """
    if isinstance(resolver, NoVault):
        return ShippedSecrets(vault=False)
    known = resolver.names()
    shipped = ShippedSecrets(known=frozenset(known) if known is not None else None)
    export = getattr(resolver, "export", None)
    for name in sorted(names):
        if export is None:
            shipped.refused[name] = (
                f"secret '{name}' cannot be sent to a cluster worker: the configured secret "
                "store does not support it; use the vault or the local backend"
            )
            continue
        try:
            value, allowed_hosts = await export(name)
        except TaskError as exc:
            shipped.refused[name] = exc.message
            continue
        shipped.values[name] = (value, tuple(allowed_hosts))
    return shipped


async def _deliver(result: AttemptResult, ctx: RunContext) -> Any:
    """Replay the worker's logs and model usage, write its artifacts and saved secrets here,
    and return its output or raise its error."""
    for level, message, data in result.logs:
        ctx.log_sink(level, message, data)
    for used in result.usage:
        if ctx.usage_sink is not None:
            ctx.usage_sink(used)
    if result.artifacts:
        await asyncio.to_thread(write_files, Path(ctx.run_dir), result.artifacts)
    for saved in result.saved_secrets:
        await ctx.secrets.store(
            saved.name,
            saved.value,
            allowed_hosts=saved.allowed_hosts,
            description=saved.description,
        )
    if result.outcome == "succeeded":
        return result.output
    if result.outcome == "failed":
        raise TaskError(
            result.error or "the attempt failed on the worker",
            result.error_class or "error",
            retry_after=result.retry_after,
        )
    if result.outcome == "lost":
        raise TaskError(WORKER_LOST, "network")
    raise TaskError(f"the worker {result.worker} stopped while running the attempt", "network")
