"""Runs one orchestration: ready queue, slots, trigger rules, retries, fan-out, cancel, timeouts.

Everything here happens on the event loop thread, so the state needs no locks. A task becomes
ready when its dependencies are terminal and its stage is open; ready tasks wait in queues
grouped by the pools they need, ordered by (higher priority, document order). Whenever
something changes, ``_dispatch`` starts as many ready tasks as the pools allow. A finished task's
state is committed before its dependents are released.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import json
import logging
import math
import operator
import random
import time
from collections.abc import Coroutine, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from multi_task_orchestrator.engine import outputs
from multi_task_orchestrator.engine.document.models import (
    ErrorClass,
    Orchestration,
    RetryPolicy,
    RunIf,
    Strategy,
)
from multi_task_orchestrator.engine.document.plan import execution_stages
from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.expressions import (
    ExpressionError,
    Scope,
    find_references,
    resolve,
    secret_names,
)
from multi_task_orchestrator.engine.pools import Pool
from multi_task_orchestrator.engine.run.fanout import (
    FanoutProblem,
    fanout_items,
    items_summary,
    make_child,
)
from multi_task_orchestrator.engine.run.finish import run_outcome
from multi_task_orchestrator.engine.run.node import Node, held_output
from multi_task_orchestrator.engine.run.problems import config_problem
from multi_task_orchestrator.engine.run.retry import retry_delay, should_retry
from multi_task_orchestrator.engine.run_end import RunEnd
from multi_task_orchestrator.engine.runners.base import RunContext, Runner
from multi_task_orchestrator.engine.state import RunSnapshot, RunStatus, TaskSnapshot, TaskState
from multi_task_orchestrator.engine.store import AttemptRow, OrchestrationRow, StoreError, TaskRow

if TYPE_CHECKING:
    from multi_task_orchestrator.engine.engine import Engine

MAX_ERROR_LENGTH = 2000
WAIT_NOTICED = 0.002  # seconds in the queue before a task counts as having waited

logger = logging.getLogger("orchestrator.scheduler")


class Run:
    """One orchestration in this process."""

    def __init__(
        self,
        engine: Engine,
        orchestration_id: str,
        spec: Orchestration,
        *,
        created_at: float,
        run_dir: Path,
        idempotency_key: str | None = None,
        source: str | None = None,
    ) -> None:
        self.engine = engine
        self.id = orchestration_id
        self.spec = spec
        self.created_at = created_at
        self.run_dir = run_dir
        self.idempotency_key = idempotency_key
        self.source = source
        self.status = RunStatus.running
        # Until when (event loop clock) this process knows it holds the run's lease; nothing
        # starts after it unless a renewal proves the lease still held (Engine.lease_lapsed).
        self.lease_valid_until = asyncio.get_running_loop().time() + engine.lease_seconds
        self.taken_over = False  # another process took the run over: this one is dropped
        self.durable_starts = False  # commit each attempt's start before its runner runs
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.error: str | None = None
        self.max_parallel = 0
        self.running = 0
        self.finished = asyncio.Event()
        self.changed = asyncio.Event()
        self.nodes: dict[str, Node] = {}
        self._order: list[Node] = []
        self._queues: dict[tuple[int, ...], tuple[tuple[Pool, ...], list[Any]]] = {}
        self._counter = itertools.count()
        self._open = 0
        self._stage_keys: list[int] = []
        self._stage_open: dict[int, int] = {}
        self._stage_members: dict[int, list[Node]] = {}
        self._current_stage = 0
        self._dispatch_pending = False
        self._wake_at = math.inf
        self._wake_handle: asyncio.TimerHandle | None = None
        self._timeout_handle: asyncio.TimerHandle | None = None
        self._stopping: str | None = None  # "cancel" | "abort" | "timeout"
        self._finalizing = False
        self._terminal_queue: collections.deque[Node] = collections.deque()
        self._uncommitted: list[Node] = []  # terminal, waiting for their commit to propagate
        self._committing = False
        self._draining = False
        self._stage_position: dict[int, int] = {}
        self.background: set[asyncio.Task[Any]] = set()
        self._static_configs: dict[str, Any] = {}  # parsed configs that hold no reference
        self._queue_blocked_by: dict[tuple[int, ...], str | None] = {}  # last reason per queue
        self._orchestration_pool = Pool(
            "orchestration", spec.max_concurrent, None, kind="orchestration"
        )
        self._limit_pools = {
            name: Pool(name, limit.concurrency, limit.rate) for name, limit in spec.limits.items()
        }
        self._secret_names: dict[str, frozenset[str]] = {}
        self._static_ids: set[str] = set()  # configs without ${...}: nothing to resolve
        for task in spec.tasks:
            if find_references(task.config):
                self._secret_names[task.id] = frozenset(secret_names(task.config))
            else:
                self._static_ids.add(task.id)
        self._build()

    # --- construction ---------------------------------------------------------------------

    def _build(self) -> None:
        spec = self.spec
        default_retry = None
        if spec.on_failure.strategy == Strategy.retry:
            default_retry = RetryPolicy(
                max_attempts=spec.on_failure.max_retries + 1, on=(ErrorClass.any,)
            )
        stages = execution_stages(spec)
        stage_of = {task_id: number for number, ids in enumerate(stages) for task_id in ids}
        for position, task in enumerate(spec.tasks):
            pools = (
                self.engine.server_pool,
                self._orchestration_pool,
                *(self._limit_pools[name] for name in task.limit),
            )
            node = Node(
                spec=task,
                task_id=task.id,
                position=position * 100_000,
                stage=stage_of[task.id],
                pools=pools,
                retry=task.retry or default_retry,
            )
            if task.for_each is not None and task.max_concurrent:
                node.fanout_pool = Pool(task.id, task.max_concurrent, kind="fan-out of")
            self.nodes[task.id] = node
            self._order.append(node)
        for node in self._order:
            node.deps = [self.nodes[dep] for dep in node.spec.dependencies]
            for dep in node.deps:
                dep.dependents.append(node)
        self._stage_keys = sorted({node.stage for node in self._order})
        self._stage_position = {stage: index for index, stage in enumerate(self._stage_keys)}
        for node in self._order:
            self._stage_members.setdefault(node.stage, []).append(node)
            self._stage_open[node.stage] = self._stage_open.get(node.stage, 0) + 1

    def persist_all(self) -> None:
        """Queue a new run's row, with its document, and every task's row (listings show the
        pending ones); ``start`` may follow once they are committed."""
        self.started_at = time.time()
        document = self.spec.model_dump(mode="json", exclude_none=True)
        self.engine.store.put_orchestration(self.orchestration_row(document))
        for node in self._order:
            self._persist(node)

    def orchestration_row(self, document: dict[str, Any] | None = None) -> OrchestrationRow:
        """The run's row; ``document`` only on its first save (None keeps the stored one)."""
        return OrchestrationRow(
            id=self.id,
            name=self.spec.name,
            status=self.status.value,
            document=document,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            error=self.error,
            max_parallel=self.max_parallel,
            run_dir=str(self.run_dir),
            idempotency_key=self.idempotency_key,
            source=self.source,
            owner=self.engine.owner,
            lease_until=self.engine.lease_deadline(),
            owner_process=self.engine.owner_process,
        )

    def restore(self, rows: list[TaskRow]) -> tuple[int, int]:
        """Apply persisted task rows after a restart; return (kept, to_run_again)."""
        by_id = {row.task_id: row for row in rows}
        children_of: dict[str, list[TaskRow]] = {}
        for row in rows:
            if row.parent_id is not None:
                children_of.setdefault(row.parent_id, []).append(row)
        kept = again = 0
        for node in self._order:
            stored = by_id.get(node.task_id)
            if stored is None:
                continue
            row = stored
            if self._restore_node(node, row):
                kept += 1
            elif row.state not in (TaskState.pending, TaskState.queued):
                again += 1
            child_rows = children_of.get(node.task_id)
            if not child_rows:
                continue
            if not node.state.terminal:
                node.state = TaskState.running
            node.children = []
            for child_row in sorted(child_rows, key=lambda r: r.item_index or 0):
                item = json.loads(child_row.item_json or "null")
                child = self._add(make_child(node, child_row.item_index or 0, item))
                if self._restore_node(child, child_row):
                    kept += 1
                else:
                    again += int(child_row.state not in (TaskState.pending, TaskState.queued))
                    node.children_open += 1
                node.children.append(child)
        return kept, again

    def _restore_node(self, node: Node, row: TaskRow) -> bool:
        """Copy a terminal row onto its node; True when the node is finished."""
        node.attempts = row.attempts
        base_attempts = node.retry.max_attempts if node.retry else 1
        node.uncounted_attempts = max(0, row.max_attempts - base_attempts)
        if row.state == TaskState.running:
            node.uncounted_attempts += 1
        node.started_at = row.started_at
        if not TaskState(row.state).terminal:
            return False
        node.state = TaskState(row.state)
        node.finished_at = row.finished_at
        node.output_json = row.output_json
        node.output = None if outputs.reference(row.output_json) else row.output
        node.error = row.error
        node.error_class = row.error_class
        node.reason = row.reason
        node.chain = list(row.chain)
        node.root_error = row.error
        return True

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Begin (or continue, after restore) running; returns at once."""
        now = time.time()
        if self.started_at is None:
            self.started_at = now
        self.engine.store.put_orchestration(self.orchestration_row())
        if self.spec.timeout is not None:
            elapsed = now - self.started_at
            self._timeout_handle = asyncio.get_running_loop().call_later(
                max(0.0, self.spec.timeout - elapsed), self._on_timeout
            )
        self._open = 0
        for node in self._order:
            if not node.state.terminal:
                self._open += 1
            if node.children:
                self._open += sum(1 for child in node.children if not child.state.terminal)
        for stage in self._stage_keys:
            self._stage_open[stage] = sum(
                1 for node in self._stage_members[stage] if not node.state.terminal
            )
        self._current_stage = 0
        while (
            self._current_stage < len(self._stage_keys) - 1
            and self._stage_open[self._stage_keys[self._current_stage]] == 0
        ):
            self._current_stage += 1
        for node in self._order:
            if node.state.terminal:
                continue
            gate = 1 if self._stage_index(node) > self._current_stage else 0
            node.waiting = gate + sum(1 for dep in node.deps if not dep.state.terminal)
        for node in self._order:
            if node.state.terminal:
                continue
            if node.children is not None:
                for child in node.children:
                    if not child.state.terminal:
                        self._enqueue(child)
                if node.children_open == 0:
                    self._finish_fanout(node)
            elif node.waiting == 0:
                self._on_ready(node)
        if self._open == 0:
            self._begin_finalize()
        self._kick()

    @property
    def ending(self) -> bool:
        """Every task has ended and the run is committing its end (``finished`` follows)."""
        return self._finalizing and not self.finished.is_set()

    def _stage_index(self, node: Node) -> int:
        return self._stage_position[node.stage]

    # --- readiness and dispatch -----------------------------------------------------------

    def _on_ready(self, node: Node) -> None:
        """All dependencies are terminal and the stage is open: run, fan out, or skip."""
        if self._stopping and node.spec.run_if != RunIf.always:
            self._set_terminal(node, TaskState.cancelled, reason=self._stop_reason())
            return
        skip_reason = self._trigger_blocks(node)
        if skip_reason is not None:
            self._set_terminal(node, TaskState.skipped, reason=skip_reason)
            return
        if node.spec.for_each is not None:
            self._expand(node, self._for_each_items(node))
            return
        runner = self.engine.runner(node.spec.type)
        if type(runner).fan_out is not Runner.fan_out:
            try:
                items = runner.fan_out(
                    runner.parse_config(resolve(node.spec.config, self._scope(node)))
                )
            except (ExpressionError, ValidationError, TaskError) as exc:
                self._fail_now(node, config_problem(exc), "config")
                return
            except Exception as exc:  # a runner's own fan-out broke: the task fails, not the run
                logger.exception("orchestration %s: task %s: fan-out failed", self.id, node.task_id)
                self._fail_now(node, f"internal error: {type(exc).__name__}: {exc}", "internal")
                return
            if items is not None:
                self._expand(node, items)
                return
        self._enqueue(node)

    def _trigger_blocks(self, node: Node) -> str | None:
        rule = node.spec.run_if
        if rule in (RunIf.all_done, RunIf.always):
            return None
        if rule == RunIf.any_failed:
            if any(dep.state == TaskState.failed for dep in node.deps):
                return None
            return "no dependency failed (run_if: any_failed)"
        for dep in node.deps:
            if dep.state == TaskState.succeeded:
                continue
            node.chain = [dep.task_id, *dep.chain]
            node.root_error = dep.root_error
            if dep.state == TaskState.cancelled:
                why = f" ({dep.reason})" if dep.reason else ""
                return f"dependency {dep.task_id} was cancelled{why}"
            if dep.state == TaskState.failed:
                node.root_error = dep.error
                return f"dependency {dep.task_id} failed ({dep.error})"
            return f"dependency {dep.task_id} was skipped ({self._root_cause(node.chain)})"
        return None

    def _root_cause(self, chain: list[str]) -> str:
        """What a chain of skips (``chain``: from a skipped dependency to the task that
        started it) comes from, e.g. ``chain: c -> b -> a; a failed: boom``."""
        root = self.nodes.get(chain[-1])
        if root is None:
            return "chain: " + " -> ".join(chain)
        if root.state == TaskState.failed:
            what = f"{root.task_id} failed" + (f": {root.error}" if root.error else "")
        elif root.state == TaskState.cancelled:
            what = f"{root.task_id} was cancelled"
        elif len(chain) == 1:  # skipped by its own rule (e.g. run_if: any_failed)
            return root.reason or "for no recorded reason"
        else:
            what = f"{root.task_id} was skipped: {root.reason or 'no reason recorded'}"
        return f"chain: {' -> '.join(chain)}; {what}"

    def _enqueue(self, node: Node) -> None:
        node.state = TaskState.queued
        node.queued_at = time.time()
        node.wait_reason = None
        self._persist(node)
        self._push(node)
        self._kick()

    def _push(self, node: Node) -> None:
        pools = node.pools + (
            (node.parent.fanout_pool,) if node.parent and node.parent.fanout_pool else ()
        )
        key = self._queue_key(pools)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = (pools, [])
        heapq.heappush(queue[1], (-node.spec.priority, node.position, next(self._counter), node))

    @staticmethod
    def _queue_key(pools: tuple[Pool, ...]) -> tuple[int, ...]:
        return tuple(id(pool) for pool in pools)

    def _kick(self) -> None:
        if not self._dispatch_pending:
            self._dispatch_pending = True
            asyncio.get_running_loop().call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._dispatch_pending = False
        if self.engine.draining or self.taken_over:
            return  # shutting down: what runs may finish, nothing new starts
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now >= self.lease_valid_until:
            self.engine.lease_lapsed(self)  # kicks this run again once the lease is renewed
            return
        wake_at = math.inf
        while True:
            best: tuple[Any, ...] | None = None
            best_queue: list[Any] | None = None
            best_pools: tuple[Pool, ...] = ()
            for key, (pools, queue) in self._queues.items():
                while queue and queue[0][3].state != TaskState.queued:
                    heapq.heappop(queue)  # cancelled while it waited
                if not queue:
                    continue
                blocked = max(pool.blocked_until(now) or -math.inf for pool in pools)
                if blocked != -math.inf:
                    wake_at = min(wake_at, blocked)
                    # every task behind this head waits for the same thing; it learns the
                    # reason when it starts (_queue_blocked_by), without walking the queue now
                    self._queue_blocked_by[key] = self.waiting_for(queue[0][3])
                    continue
                if best is None or queue[0][:3] < best[:3]:
                    best, best_queue, best_pools = queue[0], queue, pools
            if best is None or best_queue is None:
                break
            heapq.heappop(best_queue)
            for pool in best_pools:
                pool.acquire(now)
            node = best[3]
            waited = node.queued_at is not None and time.time() - node.queued_at > WAIT_NOTICED
            if node.wait_reason is None and waited:
                node.wait_reason = self._queue_blocked_by.get(self._queue_key(best_pools))
            node.state = TaskState.running
            node.held = best_pools
            self.running += 1
            self.max_parallel = max(self.max_parallel, self.running)
            node.worker = asyncio.create_task(self._execute(node))
        if wake_at != math.inf and wake_at < self._wake_at:
            if self._wake_handle is not None:
                self._wake_handle.cancel()
            self._wake_at = wake_at
            self._wake_handle = loop.call_at(wake_at, self._on_wake)

    def _on_wake(self) -> None:
        self._wake_at = math.inf
        self._wake_handle = None
        self._dispatch()

    def waiting_for(self, node: Node) -> str | None:
        """What a task waits for, e.g. ``rate limit api (10/s)`` or a host's slot."""
        if node.state == TaskState.running:
            return node.waiting_note
        if node.state != TaskState.queued:
            return None
        now = asyncio.get_running_loop().time()
        pools = node.pools + (
            (node.parent.fanout_pool,) if node.parent and node.parent.fanout_pool else ()
        )
        for pool in pools:
            blocked = pool.blocked_until(now)
            if blocked is not None:
                return pool.describe(blocked)
        return None

    # --- running one task -----------------------------------------------------------------

    async def _execute(self, node: Node) -> None:
        if asyncio.get_running_loop().time() >= self.lease_valid_until or self.taken_over:
            self._undispatch(node)  # the process stalled between dispatch and here
            return
        node.executing = True
        node.attempts += 1
        attempt = node.attempts
        now = time.time()
        if node.started_at is None:
            node.started_at = now
        self._persist(node)
        store = self.engine.store

        def record(outcome: str | None = None, finished: float | None = None, **error: Any) -> None:
            store.put_attempt(
                AttemptRow(
                    self.id,
                    node.task_id,
                    attempt,
                    now,
                    finished,
                    outcome,
                    queued_at=node.queued_at,
                    waited_for=node.wait_reason,
                    **error,
                )
            )

        record()
        self._event(node, "started", f"attempt {attempt}/{node.max_attempts}")
        output: Any = None
        failure: TaskError | None = None
        try:
            if self.durable_starts:
                await store.flush()
            output = self.engine.redact_data(await self._call_runner(node, attempt))
            node.output_json = self._keep_output(node, json.dumps(output, default=str))
        except asyncio.CancelledError:
            self._release(node)
            if node.cancel_reason is None:
                # the engine is shutting down: the task stays running and resumes later; the
                # attempt is closed here, so a resume does not count it as a process death
                record("interrupted", time.time())
                raise
            record("cancelled", time.time())
            self._set_terminal(node, TaskState.cancelled, reason=node.cancel_reason)
            return
        except TaskError as exc:
            failure = exc
        except (TypeError, ValueError) as exc:
            failure = TaskError(f"the output is not JSON: {exc}", "error")
        except StoreError as exc:  # the start could not be committed: nothing may run
            self._release(node)
            self.engine.store_failed(exc)
            return
        except Exception as exc:  # redaction, serialising, the output file: the attempt fails
            logger.exception("orchestration %s: task %s: internal error", self.id, node.task_id)
            failure = TaskError(f"internal error: {type(exc).__name__}: {exc}", "internal")
        finally:
            node.worker = None  # a finished asyncio task holds its frames until dropped
        self._release(node)
        finished = time.time()
        if failure is None:
            record("succeeded", finished)
            node.output = None if outputs.reference(node.output_json) else output
            self._set_terminal(node, TaskState.succeeded, finished_at=finished)
            self._propagate_after_commit(node)
            return
        message = self.engine.redact(failure.message)[:MAX_ERROR_LENGTH]
        record("failed", finished, error=message, error_class=failure.error_class)
        node.error, node.error_class = message, failure.error_class
        if should_retry(node, failure, stopping=bool(self._stopping)):
            self._schedule_retry(node, failure)
            return
        node.root_error = message
        self._set_terminal(node, TaskState.failed, finished_at=finished)
        self._propagate_after_commit(node)

    async def _call_runner(self, node: Node, attempt: int) -> Any:
        runner = self.engine.runner(node.spec.type)
        try:
            parsed = self._static_configs.get(node.spec.id)
            if parsed is None and node.spec.id in self._static_ids:
                parsed = runner.parse_config(node.spec.config)
                if node.parent is not None or node.max_attempts > 1:
                    self._static_configs[node.spec.id] = parsed  # for its next attempts or items
            elif parsed is None:
                parsed = runner.parse_config(resolve(node.spec.config, self._scope(node)))
        except (ExpressionError, ValidationError) as exc:
            raise TaskError(config_problem(exc), "config") from None
        ctx = RunContext(
            orchestration_id=self.id,
            task_id=node.task_id,
            attempt=attempt,
            run_dir=self.run_dir,
            secrets=self.engine.secrets,
            log_sink=lambda level, message, data: self._event(node, "log", message, level, data),
            resources=self.engine.resources,
            secret_names=self._secret_names.get(node.spec.id, frozenset()),
            network=self.engine.network,
            workspace=self.engine.workspace,
            item=node.item,
            index=node.index,
            on_wait=lambda what: self._note_waiting(node, what),
        )
        timeout = node.spec.timeout
        work = self.engine.backend.run_attempt(runner, parsed, ctx)
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

    def _keep_output(self, node: Node, output_json: str) -> str:
        return outputs.keep(output_json, self.run_dir, node.task_id, self.engine.output_threshold)

    def output_of(self, node: Node) -> Any:
        """A finished task's output, read from its file when it was too large to keep."""
        if node.output is not None or node.output_json is None:
            return node.output
        return outputs.load(node.output_json, self.run_dir)

    def _note_waiting(self, node: Node, what: str | None) -> None:
        node.waiting_note = what
        self.changed.set()

    def _scope(self, node: Node) -> Scope:
        return Scope(
            outputs=_FinishedOutputs(self),
            vars=self.spec.vars,
            item=node.item,
            index=node.index,
            has_item=node.parent is not None,
        )

    def _undispatch(self, node: Node) -> None:
        """Put a task dispatched but not started back in its queue (the lease lapsed)."""
        node.worker = None
        self._release(node)
        node.state = TaskState.queued
        self._push(node)
        self.engine.lease_lapsed(self)

    def _release(self, node: Node) -> None:
        node.executing = False
        if not node.held:
            return
        self.running -= 1
        for pool in node.held:
            pool.release()
        node.held = ()
        self.engine.pool_released(self)
        self._kick()

    def _schedule_retry(self, node: Node, failure: TaskError) -> None:
        policy = node.retry
        assert policy is not None
        delay = retry_delay(policy, node.attempts, failure)
        node.state = TaskState.retrying
        self._persist(node)
        self._event(
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
        if self._stopping and node.spec.run_if != RunIf.always:
            self._set_terminal(node, TaskState.failed, finished_at=time.time())
            self._propagate(node)
            return
        self._enqueue(node)

    # --- fan-out --------------------------------------------------------------------------

    def _for_each_items(self, parent: Node) -> Any:
        try:
            return resolve(parent.spec.for_each, self._scope(parent))
        except ExpressionError as exc:
            return exc

    def _expand(self, parent: Node, items: Any) -> None:
        """Start one tracked child per item (from for_each, or the runner's own fan-out)."""
        items = fanout_items(items, self.engine.max_fanout)
        if isinstance(items, FanoutProblem):
            self._fail_now(parent, items.message, "config")
            return
        now = time.time()
        parent.state = TaskState.running
        parent.started_at = now
        parent.children = [
            self._add(make_child(parent, index, item)) for index, item in enumerate(items)
        ]
        parent.children_open = len(parent.children)
        self._open += len(parent.children)
        self._persist(parent)
        for child in parent.children:
            self._persist(child)
        self._event(parent, "fanned_out", f"{len(items)} item(s)")
        if not parent.children:
            self._finish_fanout(parent)
            return
        for child in parent.children:
            self._enqueue(child)

    def _add(self, child: Node) -> Node:
        self.nodes[child.task_id] = child
        return child

    def _finish_fanout(self, parent: Node) -> None:
        """Every item ended: the fan-out fails when one failed, is cancelled when items were
        cancelled and none failed (unless ``allow_partial`` keeps what succeeded while the run
        goes on), and succeeds otherwise."""
        children = parent.children or []
        cancelled = [child for child in children if child.state == TaskState.cancelled]
        failed = [
            child
            for child in children
            if child.state not in (TaskState.succeeded, TaskState.cancelled)
        ]
        items = [self.output_of(child) for child in children]
        parent.output_json = self._keep_output(parent, json.dumps(items, default=str))
        parent.output = None if outputs.reference(parent.output_json) else items
        finished = time.time()
        if failed or cancelled:
            summary = items_summary(failed or cancelled, len(children), failed=bool(failed))
            if failed and cancelled:
                summary += f"; {len(cancelled)} cancelled"
            if parent.spec.allow_partial and (failed or not self._stopping):
                parent.reason = f"partial: {summary}"
            else:
                parent.output = None
                parent.output_json = None
                if not failed:
                    self._set_terminal(
                        parent, TaskState.cancelled, reason=summary, finished_at=finished
                    )
                    return
                parent.error = summary
                parent.error_class = failed[0].error_class or "error"
                parent.root_error = summary
                self._set_terminal(parent, TaskState.failed, finished_at=finished)
                self._propagate_after_commit(parent)
                return
        self._set_terminal(parent, TaskState.succeeded, finished_at=finished)
        self._propagate_after_commit(parent)

    def _fail_now(self, node: Node, message: str, error_class: str) -> None:
        message = self.engine.redact(message)
        node.error, node.error_class, node.root_error = message, error_class, message
        self._set_terminal(node, TaskState.failed, finished_at=time.time())
        self._propagate_after_commit(node)

    def _propagate_after_commit(self, node: Node) -> None:
        """Let dependents (and the parent fan-out) proceed once the outcome is durable.

        Outcomes that arrive while a commit is awaited wait for the next one together, so a
        thousand tasks finishing at once cost one waiter, not a thousand.
        """
        self._uncommitted.append(node)
        if not self._committing:
            self._committing = True
            self._spawn(self._commit_then_propagate())

    async def _commit_then_propagate(self) -> None:
        try:
            while self._uncommitted:
                nodes, self._uncommitted = self._uncommitted, []
                try:
                    await self.engine.store.flush()
                except StoreError as exc:
                    self.engine.store_failed(exc)  # nothing may start on an unsaved outcome
                    return
                for node in nodes:
                    self._propagate(node)
        finally:
            self._committing = False

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run bookkeeping in the background; the engine waits for it before closing."""
        background = asyncio.get_running_loop().create_task(work)
        self.background.add(background)
        background.add_done_callback(self.background.discard)

    # --- terminal states and what follows them --------------------------------------------

    def _set_terminal(
        self,
        node: Node,
        state: TaskState,
        *,
        reason: str | None = None,
        finished_at: float | None = None,
    ) -> None:
        """Record a terminal state. Skips and cancellations propagate at once."""
        node.state = state
        node.finished_at = finished_at or time.time()
        if reason is not None:
            node.reason = reason
        if node.retry_handle is not None:
            node.retry_handle.cancel()
            node.retry_handle = None
        self._persist(node)
        if state == TaskState.succeeded:
            took = (node.finished_at - node.started_at) if node.started_at else 0.0
            self._event(node, state.value, f"after {node.attempts} attempt(s), {took:.2f}s")
        else:
            detail = node.error if state == TaskState.failed else node.reason
            self._event(node, state.value, detail or "", "warning")
        if state == TaskState.failed and self.spec.on_failure.notify:
            self._event(node, "notify", f"task {node.task_id} failed: {node.error}", "error")
        if state in (TaskState.skipped, TaskState.cancelled):
            self._propagate(node)

    def _propagate(self, node: Node) -> None:
        """A node is terminal (and committed): release dependents, close stages and fan-outs.

        Work is queued and drained by the outermost call, so a long chain of skips does not
        recurse once per task.
        """
        self._terminal_queue.append(node)
        if self._draining:
            return
        self._draining = True
        try:
            self._drain_terminal_queue()
        finally:
            self._draining = False
        if self._open == 0:
            self._begin_finalize()

    def _drain_terminal_queue(self) -> None:
        pending = self._terminal_queue
        while pending:
            current = pending.popleft()
            self._open -= 1
            self.changed.set()
            if current.parent is not None:
                parent = current.parent
                parent.children_open -= 1
                if parent.children_open == 0 and not parent.state.terminal:
                    self._finish_fanout(parent)
                continue
            if (
                current.state == TaskState.failed
                and self.spec.on_failure.strategy == Strategy.abort
            ):
                self._stop("abort", f"aborted: task {current.task_id} failed ({current.error})")
            for dependent in current.dependents:
                if dependent.state.terminal:
                    continue
                dependent.waiting -= 1
                if dependent.waiting == 0:
                    self._on_ready(dependent)
            stage = current.stage
            self._stage_open[stage] -= 1
            if self._stage_open[stage] == 0:
                self._open_next_stage()

    def _open_next_stage(self) -> None:
        while self._current_stage < len(self._stage_keys) - 1:
            key = self._stage_keys[self._current_stage]
            if self._stage_open[key] > 0:
                return
            self._current_stage += 1
            for node in self._stage_members[self._stage_keys[self._current_stage]]:
                if node.state.terminal:
                    continue
                node.waiting -= 1
                if node.waiting == 0:
                    self._on_ready(node)

    # --- stopping -------------------------------------------------------------------------

    def cancel(self, reason: str = "cancelled by request") -> None:
        self._stop("cancel", reason)

    def cancel_task(self, task_id: str, reason: str = "cancelled by request") -> bool:
        node = self.nodes[task_id]
        if node.state.terminal:
            return False
        self._cancel_node(node, reason)
        return True

    def _on_timeout(self) -> None:
        self._stop("timeout", f"timed out after {self.spec.timeout:g}s")

    def _stop(self, how: str, reason: str) -> None:
        if self._stopping or self._finalizing:  # every task ended: nothing is left to stop
            return
        self._stopping = how
        self.error = self.engine.redact(reason)
        self._event(None, how, reason, "warning")
        for node in list(self.nodes.values()):
            if node.state.terminal or (how == "abort" and node.spec.run_if == RunIf.always):
                continue
            self._cancel_node(node, self._stop_reason())

    def _stop_reason(self) -> str:
        if self._stopping == "cancel" and self.error:
            return self.error
        return {
            "cancel": "orchestration cancelled",
            "abort": "orchestration aborted",
            "timeout": "orchestration timed out",
        }.get(self._stopping or "", "orchestration stopped")

    def _cancel_node(self, node: Node, reason: str) -> None:
        if node.state.terminal:
            return
        if node.children is not None:
            for child in node.children:
                self._cancel_node(child, reason)
            return
        if node.state == TaskState.running and node.worker is not None:
            node.cancel_reason = reason
            node.worker.cancel()
            if node.executing:
                return  # _execute sees the cancellation and records it
            self._release(node)  # dispatched but never started: the coroutine will not run
        self._set_terminal(node, TaskState.cancelled, reason=reason)

    # --- finishing ------------------------------------------------------------------------

    def _begin_finalize(self) -> None:
        if self._finalizing:
            return
        self._finalizing = True
        self._spawn(self._finalize())

    async def _finalize(self) -> None:
        """End the run: commit everything, write its files, then publish the end.

        Until the last step the run reads as running everywhere (in memory and in the
        database): its terminal state is committed, and it leaves ``engine.runs`` and wakes
        its waiters, only once nothing is left to do. So the moment any tool says it finished,
        every tool agrees (a retry is accepted, a cancel refused).
        """
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        if self._wake_handle is not None:
            self._wake_handle.cancel()
        if self.taken_over:
            return  # the process that took it over ends it
        status, error = run_outcome(
            self.nodes.values(), self._ordered_nodes, self._stopping, self.error
        )
        finished_at = time.time()
        store = self.engine.store
        took = finished_at - (self.started_at or self.created_at)
        self._event(None, "finished", f"{status.value} in {took:.2f}s")
        try:
            await store.flush()
            if self.taken_over:  # that flush was refused: another process owns the run now
                return
            try:
                await self._write_files(status, error, finished_at)
            except (OSError, ValueError) as exc:  # the run's outcome still counts
                logger.error("orchestration %s: could not write its files: %s", self.id, exc)
                self._event(None, "files", f"could not write the run's files: {exc}", "error")
            self.status, self.error, self.finished_at = status, error, finished_at
            store.put_orchestration(self.orchestration_row())
            await store.flush()
        except StoreError as exc:
            self.engine.store_failed(exc)
        finally:
            self.status, self.error, self.finished_at = status, error, finished_at
            self.engine.run_finished(self)
            self.finished.set()
            self.changed.set()

    async def _write_files(self, status: RunStatus, error: str | None, finished_at: float) -> None:
        """Hand the run as it ends to the engine's run-end listeners (the default one writes
        the result files and the report)."""
        listeners = self.engine.run_end_listeners
        if not listeners:
            return
        snapshot = self.snapshot(include_outputs=True, load_output_files=False).model_copy(
            update={"status": status, "error": error, "finished_at": finished_at}
        )
        end = RunEnd(
            snapshot=snapshot,
            store=self.engine.store,
            run_dir=self.run_dir,
            dependencies={task.id: task.dependencies for task in self.spec.tasks},
            stages=[self._stage_ids(stage) for stage in self._stage_keys],
        )
        for listener in listeners:
            await listener(end)

    def _stage_ids(self, stage: int) -> list[str]:
        return [node.task_id for node in self._stage_members[stage]]

    # --- persistence and views ------------------------------------------------------------

    def _persist(self, node: Node) -> None:
        self.engine.store.put_task_later(self.id, node.task_id, partial(self._row, node))
        self.changed.set()

    def _row(self, node: Node) -> TaskRow:
        return TaskRow(
            orchestration_id=self.id,
            task_id=node.task_id,
            position=node.position,
            type=node.spec.type,
            label=node.label,
            state=node.state.value,
            parent_id=node.parent.task_id if node.parent else None,
            attempts=node.attempts,
            max_attempts=node.max_attempts,
            started_at=node.started_at,
            finished_at=node.finished_at,
            output_json=node.output_json if node.state == TaskState.succeeded else None,
            error=node.error,
            error_class=node.error_class,
            reason=node.reason,
            chain=node.chain,
            item_json=json.dumps(node.item, default=str) if node.parent else None,
            item_index=node.index,
        )

    def _event(
        self,
        node: Node | None,
        kind: str,
        message: str,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        self.engine.store.add_event(
            self.id,
            node.task_id if node else None,
            kind,
            self.engine.redact(message),
            ts=time.time(),
            level=level,
            data=self.engine.redact_data(data) if data else None,
        )

    def snapshot(
        self, *, include_outputs: bool = False, load_output_files: bool = True
    ) -> RunSnapshot:
        """The run now. Outputs kept as files are read back unless ``load_output_files`` is
        false, when their reference (``{"$output_file": ..., "bytes": ...}``) stands in."""
        loader = self.output_of if load_output_files else held_output
        tasks = [
            self._task_snapshot(node, loader(node) if include_outputs else None)
            for node in self._ordered_nodes()
        ]
        return self._run_snapshot(tasks)

    def status_snapshot(
        self, task_ids: set[str], by_state: Mapping[TaskState, list[Node]]
    ) -> RunSnapshot:
        """The run now as a status reads it (``Engine.status``): the tasks ``task_ids`` names,
        built as ``snapshot`` builds them (without outputs), in document order, and every
        task's state counted in ``task_counts`` (from ``by_state``: the nodes grouped by state)
        — None when ``task_ids`` names every task, as in ``snapshot``."""
        shown = sorted((self.nodes[task_id] for task_id in task_ids), key=_position)
        tasks = [self._task_snapshot(node, None) for node in shown]
        counts = {state.value: len(nodes) for state, nodes in by_state.items() if nodes}
        if len(tasks) == sum(counts.values()):
            return self._run_snapshot(tasks)
        snapshot = self._run_snapshot(tasks, task_counts=counts)
        running = by_state.get(TaskState.running, ())
        snapshot.fan_outs_running = sum(1 for node in running if node.children)
        return snapshot

    def _task_snapshot(self, node: Node, output: Any) -> TaskSnapshot:
        return TaskSnapshot(
            task_id=node.task_id,
            label=node.label,
            type=node.spec.type,
            state=node.state,
            position=node.position,
            parent_id=node.parent.task_id if node.parent else None,
            attempts=node.attempts,
            max_attempts=node.max_attempts,
            started_at=node.started_at,
            finished_at=node.finished_at,
            error=node.error,
            error_class=node.error_class,
            reason=node.reason,
            chain=list(node.chain),
            waiting_for=self.waiting_for(node),
            output=output,
            has_output=node.output_json is not None,
        )

    def _run_snapshot(
        self, tasks: list[TaskSnapshot], task_counts: dict[str, int] | None = None
    ) -> RunSnapshot:
        return RunSnapshot(
            id=self.id,
            name=self.spec.name,
            status=self.status,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            error=self.error,
            max_parallel=self.max_parallel,
            run_dir=str(self.run_dir),
            tasks=tasks,
            task_counts=task_counts,
        )

    def _ordered_nodes(self) -> Iterator[Node]:
        for node in self._order:
            yield node
            if node.children:
                yield from node.children


class _FinishedOutputs(Mapping[str, Any]):
    """The reference scope's view of finished tasks, built on demand (never copied)."""

    __slots__ = ("_nodes", "_run")

    def __init__(self, run: Run) -> None:
        self._run = run
        self._nodes = run.nodes

    def __getitem__(self, task_id: str) -> dict[str, Any]:
        node = self._nodes[task_id]
        if not node.state.terminal:
            raise KeyError(task_id)
        return {"output": self._run.output_of(node), "state": node.state.value, "error": node.error}

    def __iter__(self) -> Iterator[str]:
        return (tid for tid, node in self._nodes.items() if node.state.terminal)

    def __len__(self) -> int:
        return sum(1 for node in self._nodes.values() if node.state.terminal)


_position = operator.attrgetter("position")


def make_run_id() -> str:
    """A short, unique, roughly time-ordered id such as ``orch-1a2b3c4d5e``."""
    return f"orch-{int(time.time()) & 0xFFFFF:05x}{random.getrandbits(24):06x}"
