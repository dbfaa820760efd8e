"""Attempts: running one dispatched task once — its config resolved, its runner called through
the backend under the task's timeout, the attempt recorded (with what its model calls used) —
and what follows a failure: a retry after the policy's delay, or the task's end. A model step
whose budget is spent does not start: it fails with class ``budget``."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from pydantic import ValidationError

from multi_task_orchestrator.engine import outputs
from multi_task_orchestrator.engine.cpu_work import cpu_bound
from multi_task_orchestrator.engine.document.models import RunIf
from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.expressions import ExpressionError, resolve, task_roots
from multi_task_orchestrator.engine.run.budget import Budgets
from multi_task_orchestrator.engine.run.core import RunCore
from multi_task_orchestrator.engine.run.dispatch import Dispatcher
from multi_task_orchestrator.engine.run.node import Node
from multi_task_orchestrator.engine.run.problems import config_problem
from multi_task_orchestrator.engine.run.readiness import Readiness
from multi_task_orchestrator.engine.run.records import Records
from multi_task_orchestrator.engine.run.retry import retry_delay, should_retry
from multi_task_orchestrator.engine.run.scope import kept_in_files, read_kept, scope_of
from multi_task_orchestrator.engine.runners.base import RunContext
from multi_task_orchestrator.engine.secrets import mend_surrogates, redact_data
from multi_task_orchestrator.engine.state import TaskState
from multi_task_orchestrator.engine.store import AttemptRow, StoreError
from multi_task_orchestrator.engine.usage import Totals, UsageRecord

MAX_ERROR_LENGTH = 2000
_dumps = partial(json.dumps, default=str)
NULL_JSON = "null"

logger = logging.getLogger("orchestrator.scheduler")


class Attempts:
    """Runs the attempts of one run's tasks."""

    def __init__(
        self,
        core: RunCore,
        records: Records,
        dispatcher: Dispatcher,
        readiness: Readiness,
        budgets: Budgets,
    ) -> None:
        self._core = core
        self._records = records
        self._dispatcher = dispatcher
        self._readiness = readiness
        self._budgets = budgets
        self._static_configs: dict[str, Any] = {}  # parsed configs that hold no reference
        self._roots: dict[str, frozenset[str]] = {}  # the tasks each config refers to

    async def execute(self, node: Node) -> None:
        """One attempt of a dispatched task, from its start to what its outcome leads to."""
        core = self._core
        if asyncio.get_running_loop().time() >= core.lease_valid_until or core.taken_over:
            self._dispatcher.undispatch(node)  # the process stalled between dispatch and here
            return
        spent = self._budgets.stop_reason(node)
        if spent is not None:  # a hard stop: the model step does not start
            self._dispatcher.release(node)
            self._readiness.fail_now(node, spent, "budget")
            return
        services = core.services
        node.executing = True
        node.attempts += 1
        attempt = node.attempts
        now = time.time()
        if node.started_at is None:
            node.started_at = now
        self._records.persist(node)
        store = services.store
        used = Totals()  # by this attempt's model calls
        ended: dict[str, Any] = {}  # how the attempt ended: outcome, finished_at, error...

        def write() -> None:
            store.put_attempt(
                AttemptRow(
                    core.id,
                    node.task_id,
                    attempt,
                    now,
                    queued_at=node.queued_at,
                    waited_for=node.wait_reason,
                    **ended,
                    **used.columns(),
                )
            )

        def record(outcome: str | None = None, finished: float | None = None, **error: Any) -> None:
            ended.update(outcome=outcome, finished_at=finished, **error)
            write()

        def on_usage(entry: UsageRecord) -> None:
            # counted at once (a call of an attempt that fails later counts too), and kept
            # with the attempt's row, which the next commit writes
            used.add(entry)
            self._budgets.add(node, entry)
            write()

        record()
        self._records.event(node, "started", f"attempt {attempt}/{node.max_attempts}")
        output: Any = None
        failure: TaskError | None = None
        try:
            if core.durable_starts:
                await store.flush()
            output = await self._call_runner(node, attempt, on_usage)
            if outputs.looks_large(output):  # not on the event loop, and faster
                large = partial(self._kept, node, output, outputs.dumps_large)
                output, node.output_json = await cpu_bound(large)
            else:
                output, node.output_json = self._kept(node, output, _dumps)
        except asyncio.CancelledError:
            self._dispatcher.release(node)
            if node.cancel_reason is None:
                # the engine is shutting down: the task stays running and resumes later; the
                # attempt is closed here, so a resume does not count it as a process death
                record("interrupted", time.time())
                raise
            record("cancelled", time.time())
            self._readiness.set_terminal(node, TaskState.cancelled, reason=node.cancel_reason)
            return
        except TaskError as exc:
            failure = exc
        except (TypeError, ValueError) as exc:
            failure = TaskError(f"the output is not JSON: {exc}", "error")
        except StoreError as exc:  # the start could not be committed: nothing may run
            self._dispatcher.release(node)
            services.store_failed(exc)
            return
        except Exception as exc:  # redaction, serialising, the output file: the attempt fails
            logger.exception("orchestration %s: task %s: internal error", core.id, node.task_id)
            failure = TaskError(f"internal error: {type(exc).__name__}: {exc}", "internal")
        finally:
            node.worker = None  # a finished asyncio task holds its frames until dropped
        self._dispatcher.release(node)
        finished = time.time()
        if failure is None:
            record("succeeded", finished)
            node.output = None if outputs.reference(node.output_json) else output
            node.error = node.error_class = None  # an earlier attempt's (its row keeps it)
            self._readiness.attempt_ended(node, TaskState.succeeded, finished)
            return
        message = services.redact(failure.message)[:MAX_ERROR_LENGTH]
        record("failed", finished, error=message, error_class=failure.error_class)
        node.error, node.error_class = message, failure.error_class
        if should_retry(node, failure, stopping=bool(core.stopping)):
            self._schedule_retry(node, failure)
            return
        node.root_error = message
        self._readiness.attempt_ended(node, TaskState.failed, finished)

    def _kept(
        self, node: Node, output: Any, dumps: Callable[[Any], str | bytes]
    ) -> tuple[Any, str]:
        """The output with secrets masked, and its JSON (by ``dumps``) as held: itself, or
        the reference to the file a large one went to."""
        core = self._core
        output = core.services.redact_data(output)
        if output is None:
            return None, NULL_JSON  # one text for every task that returns nothing
        dumped = dumps(output)
        if outputs.holds_lone_surrogate(dumped):  # a server's "\ud800": no answer could hold it
            output = redact_data(output, mend_surrogates)
            dumped = dumps(output)
        return output, core.keep_output(node, dumped)

    async def _call_runner(
        self, node: Node, attempt: int, on_usage: Callable[[UsageRecord], None]
    ) -> Any:
        core = self._core
        services = core.services
        runner = services.runner(node.spec.type)
        try:
            parsed = self._static_configs.get(node.spec.id)
            if parsed is None and core.table.is_static(node.spec.id):
                parsed = runner.parse_config(node.spec.config)
                if node.parent is not None or node.max_attempts > 1:
                    self._static_configs[node.spec.id] = parsed  # for its next attempts or items
            elif parsed is None:
                read = await self._outputs_in_files(node)
                parsed = runner.parse_config(resolve(node.spec.config, scope_of(core, node, read)))
        except (ExpressionError, ValidationError) as exc:
            raise TaskError(config_problem(exc), "config") from None
        ctx = RunContext(
            orchestration_id=core.id,
            task_id=node.task_id,
            attempt=attempt,
            run_dir=core.run_dir,
            secrets=services.secrets,
            log_sink=lambda level, message, data: self._records.event(
                node, "log", message, level, data
            ),
            resources=services.resources,
            secret_names=core.table.secret_names.get(node.spec.id, frozenset()),
            network=services.network,
            workspace=services.workspace,
            item=node.item,
            index=node.index,
            on_wait=lambda what: self._note_waiting(node, what),
            usage_sink=on_usage,
            budget_probe=lambda: self._budgets.left(node),
            approvals=services.approvals,
        )
        timeout = node.spec.timeout
        if runner.runs_in_engine:  # it waits on the engine's own services (approvals)
            work = runner.run(parsed, ctx)
        else:
            work = services.backend.run_attempt(runner, parsed, ctx)
        scope: asyncio.Timeout | None = None
        try:
            if timeout is None:
                return await work
            async with asyncio.timeout(timeout) as scope:
                return await work
        except TimeoutError:
            if scope is not None and scope.expired():
                raise TaskError(f"timed out after {timeout:g}s", "timeout") from None
            raise TaskError("timed out", "timeout") from None
        except TaskError:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise TaskError(f"{type(exc).__name__}: {exc}", "error") from None

    async def _outputs_in_files(self, node: Node) -> dict[str, Any]:
        """The outputs kept as files (large ones) that ``node``'s config refers to, read on a
        worker thread."""
        roots = self._roots.get(node.spec.id)
        if roots is None:
            roots = self._roots[node.spec.id] = task_roots(node.spec.config)
        return await read_kept(self._core, kept_in_files(self._core, roots))

    def _note_waiting(self, node: Node, what: str | None) -> None:
        node.waiting_note = what
        self._core.changed.set()

    def _schedule_retry(self, node: Node, failure: TaskError) -> None:
        policy = node.retry
        assert policy is not None
        delay = retry_delay(policy, node.attempts, failure)
        node.state = TaskState.retrying
        self._records.persist(node)
        self._records.event(
            node,
            "retrying",
            f"attempt {node.attempts}/{node.max_attempts} failed ({failure.error_class}): "
            f"{node.error}; next attempt in {delay:.2f}s",
            "warning",
            {"delay": round(delay, 3), "error_class": failure.error_class},
        )
        node.retry_handle = asyncio.get_running_loop().call_later(delay, self._retry_now, node)

    def _retry_now(self, node: Node) -> None:
        node.retry_handle = None
        if node.state != TaskState.retrying:
            return
        if self._core.stopping and node.spec.run_if != RunIf.always:
            self._readiness.attempt_ended(node, TaskState.failed, time.time())
            return
        self._dispatcher.enqueue(node)
