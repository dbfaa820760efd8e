"""Readiness: how tasks move through one run. A task becomes ready when its dependencies have
ended and its stage is open; then it runs, fans out, or is skipped (its ``run_if``). A task's
end is recorded, and committed before its dependents are released and the next stage opens.
Stopping the run (a cancel, an abort, its timeout) cancels every task not yet ended.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from pydantic import ValidationError

from multi_task_orchestrator.engine.document.models import RunIf, Strategy
from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.expressions import ExpressionError, resolve, task_roots
from multi_task_orchestrator.engine.run.core import RunCore
from multi_task_orchestrator.engine.run.dispatch import Dispatcher
from multi_task_orchestrator.engine.run.fanout import FanOut, FanoutProblem
from multi_task_orchestrator.engine.run.finish import Finisher
from multi_task_orchestrator.engine.run.node import Node
from multi_task_orchestrator.engine.run.problems import config_problem
from multi_task_orchestrator.engine.run.records import Records
from multi_task_orchestrator.engine.run.scope import kept_in_files, read_kept, scope_of
from multi_task_orchestrator.engine.run.triggers import trigger_blocks
from multi_task_orchestrator.engine.runners.base import Runner
from multi_task_orchestrator.engine.state import TaskState
from multi_task_orchestrator.engine.store import StoreError

logger = logging.getLogger("orchestrator.scheduler")


class Readiness:
    """Releases one run's tasks as what they wait for ends, and records how each ends."""

    def __init__(
        self,
        core: RunCore,
        records: Records,
        dispatcher: Dispatcher,
        fanout: FanOut,
        finisher: Finisher,
    ) -> None:
        self._core = core
        self._records = records
        self._dispatcher = dispatcher
        self._fanout = fanout
        self._finisher = finisher
        self._terminal_queue: collections.deque[Node] = collections.deque()
        self._draining = False
        self._uncommitted: list[Node] = []  # terminal, waiting for their commit to propagate
        self._committing = False

    def release_ready(self) -> None:
        """At the run's start (``NodeTable.arm`` counted what each node waits for): queue the
        unfinished items of fan-outs, and release every task that waits for nothing."""
        for node in self._core.table.order:
            if node.state.terminal:
                continue
            if node.children is not None:
                for child in node.children:
                    if not child.state.terminal:
                        self._dispatcher.enqueue(child)
                if node.children_open == 0:
                    self.finish_fanout(node)
            elif node.waiting == 0:
                self.on_ready(node)

    def on_ready(self, node: Node) -> None:
        """All dependencies are terminal and the stage is open: run, fan out, or skip."""
        core = self._core
        if core.stopping and node.spec.run_if != RunIf.always:
            self.set_terminal(node, TaskState.cancelled, reason=core.stop_reason())
            return
        skip_reason = trigger_blocks(node, core.nodes)
        if skip_reason is not None:
            self.set_terminal(node, TaskState.skipped, reason=skip_reason)
            return
        if node.spec.for_each is not None:
            self._after_reading(node, node.spec.for_each, self._for_each)
            return
        runner = core.services.runner(node.spec.type)
        if type(runner).fan_out is not Runner.fan_out:
            self._after_reading(node, node.spec.config, partial(self._runner_fan_out, runner))
            return
        self._dispatcher.enqueue(node)

    def _after_reading(
        self, node: Node, expression: Any, then: Callable[[Node, Mapping[str, Any]], None]
    ) -> None:
        """``then(node, read)`` once the outputs kept as files that ``expression`` refers to
        are read (on a worker thread: a large one takes a while) — at once when it refers to
        none. A task cancelled meanwhile is left as it is."""
        held = kept_in_files(self._core, task_roots(expression))
        if not held:
            then(node, held)
            return

        async def read_then() -> None:
            try:
                read = await read_kept(self._core, held)
            except TaskError as exc:  # a file that is gone, or cannot be read
                if not node.state.terminal:
                    self.fail_now(node, exc.message, exc.error_class)
                return
            if not node.state.terminal:
                self.guarded(partial(then, node, read))

        self._core.spawn(read_then())

    def _for_each(self, node: Node, read: Mapping[str, Any]) -> None:
        self._expand(node, self._fanout.for_each_items(node, read))

    def _runner_fan_out(self, runner: Runner[Any], node: Node, read: Mapping[str, Any]) -> None:
        """The items the task's runner fans it out into, if it does (``Runner.fan_out``)."""
        core = self._core
        try:
            items = runner.fan_out(
                runner.parse_config(resolve(node.spec.config, scope_of(core, node, read)))
            )
        except (ExpressionError, ValidationError, TaskError) as exc:
            self.fail_now(node, config_problem(exc), "config")
            return
        except Exception as exc:  # a runner's own fan-out broke: the task fails, not the run
            logger.exception("orchestration %s: task %s: fan-out failed", core.id, node.task_id)
            self.fail_now(node, f"internal error: {type(exc).__name__}: {exc}", "internal")
            return
        if items is not None:
            self._expand(node, items)
            return
        self._dispatcher.enqueue(node)

    def _expand(self, parent: Node, items: object) -> None:
        """Start one tracked child per item (from for_each, or the runner's own fan-out)."""
        children = self._fanout.expand(parent, items)
        if isinstance(children, FanoutProblem):
            self.fail_now(parent, children.message, "config")
            return
        if not children:
            self.finish_fanout(parent)
            return
        for child in children:
            self._dispatcher.enqueue(child)

    def finish_fanout(self, parent: Node) -> None:
        """Every item of ``parent`` ended: it ends as they make it (``FanOut.conclude``)."""
        end = self._fanout.conclude(parent)
        self.set_terminal(parent, end.state, reason=end.reason, finished_at=end.finished_at)
        if end.state != TaskState.cancelled:
            self.after_commit(parent)

    # --- ends, and what follows them ------------------------------------------------------

    def set_terminal(
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
        records = self._records
        records.persist(node)
        if state == TaskState.succeeded:
            took = (node.finished_at - node.started_at) if node.started_at else 0.0
            records.event(node, state.value, f"after {node.attempts} attempt(s), {took:.2f}s")
        else:
            detail = node.error if state == TaskState.failed else node.reason
            records.event(node, state.value, detail or "", "warning")
        if state == TaskState.failed:
            self._notify_failed(node)
        if state in (TaskState.skipped, TaskState.cancelled):
            self.propagate(node)

    def _notify_failed(self, node: Node) -> None:
        """The seed's ``on_failure.notify`` log event, and the ``task_failed`` channels."""
        core = self._core
        notifier = core.services.notifier
        if notifier is not None and notifier.wants_task_failed(core.spec):
            sent = notifier.task_failed(
                core.spec, core.id, node.task_id, node.error_class, node.error
            )
            core.spawn(sent)
        elif core.spec.on_failure.notify:
            message = f"task {node.task_id} failed: {node.error}"
            self._records.event(node, "notify", message, "error")

    def attempt_ended(self, node: Node, state: TaskState, finished_at: float) -> None:
        """The last attempt of ``node`` ended in ``state``: record it, and let what waits for
        it go on once that is committed (``guarded``)."""

        def end() -> None:
            self.set_terminal(node, state, finished_at=finished_at)
            self.after_commit(node)

        self.guarded(end)

    def fail_now(self, node: Node, message: str, error_class: str) -> None:
        """``node`` fails without an attempt (its config or items cannot be used)."""
        message = self._core.services.redact(message)
        node.error, node.error_class, node.root_error = message, error_class, message
        self.set_terminal(node, TaskState.failed, finished_at=time.time())
        self.after_commit(node)

    def after_commit(self, node: Node) -> None:
        """Let dependents (and the parent fan-out) proceed once the outcome is durable.

        Outcomes that arrive while a commit is awaited wait for the next one together, so a
        thousand tasks finishing at once cost one waiter, not a thousand.
        """
        self._uncommitted.append(node)
        if not self._committing:
            self._committing = True
            self._core.spawn(self._commit_then_propagate())

    async def _commit_then_propagate(self) -> None:
        core = self._core
        try:
            while self._uncommitted:
                nodes, self._uncommitted = self._uncommitted, []
                store = core.services.store
                try:
                    if not store.commit_now():  # a small batch is committed at once
                        await store.flush()
                except StoreError as exc:
                    core.services.store_failed(exc)  # nothing may start on an unsaved outcome
                    return
                for node in nodes:
                    self.guarded(partial(self.propagate, node))
        finally:
            self._committing = False

    def guarded(self, step: Callable[[], None]) -> None:
        """``step()``; should the run's own bookkeeping raise (a bug), the run ends failed
        (``fail_run``) rather than waiting for ever on what never came."""
        try:
            step()
        except Exception as exc:
            logger.exception("orchestration %s: the run's bookkeeping failed", self._core.id)
            self.fail_run(exc)

    def fail_run(self, exc: Exception) -> None:
        """End the run failed now, with the error that broke it: every task not ended is
        cancelled where it stands (an attempt under way interrupted), without following
        dependencies — what raised could raise again."""
        core = self._core
        if core.finalizing:
            return
        message = core.services.redact(f"internal error: {type(exc).__name__}: {exc}")
        core.stopping = core.stopping or "abort"
        core.error = message
        self._records.event(None, "abort", message, "error")
        now = time.time()
        for node in core.nodes.values():
            if node.state.terminal:
                continue
            if node.worker is not None and not node.worker.done():
                node.cancel_reason = message
                node.worker.cancel()
            node.state, node.reason, node.finished_at = TaskState.cancelled, message, now
            self._records.persist(node)
        self._finisher.begin()

    def propagate(self, node: Node) -> None:
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
        if self._core.open == 0:
            self._finisher.begin()

    def _drain_terminal_queue(self) -> None:
        core = self._core
        table = core.table
        pending = self._terminal_queue
        while pending:
            current = pending.popleft()
            core.open -= 1
            core.changed.set()
            if current.parent is not None:
                parent = current.parent
                parent.children_open -= 1
                if parent.children_open == 0 and not parent.state.terminal:
                    self.finish_fanout(parent)
                continue
            if (
                current.state == TaskState.failed
                and core.spec.on_failure.strategy == Strategy.abort
            ):
                self.stop("abort", f"aborted: task {current.task_id} failed ({current.error})")
            for dependent in current.dependents:
                if dependent.state.terminal:
                    continue
                dependent.waiting -= 1
                if dependent.waiting == 0:
                    self.on_ready(dependent)
            stage = current.stage
            table.stage_open[stage] -= 1
            if table.stage_open[stage] == 0:
                self._open_next_stage()

    def _open_next_stage(self) -> None:
        table = self._core.table
        while table.current_stage < len(table.stage_keys) - 1:
            key = table.stage_keys[table.current_stage]
            if table.stage_open[key] > 0:
                return
            table.current_stage += 1
            for node in table.stage_members[table.stage_keys[table.current_stage]]:
                if node.state.terminal:
                    continue
                node.waiting -= 1
                if node.waiting == 0:
                    self.on_ready(node)

    # --- stopping -------------------------------------------------------------------------

    def stop(self, how: str, reason: str) -> None:
        """Stop the run (``how``: cancel, abort or timeout): cancel every task not ended (an
        abort spares ``run_if: always`` tasks)."""
        core = self._core
        if core.stopping or core.finalizing:  # every task ended: nothing is left to stop
            return
        core.stopping = how
        core.error = core.services.redact(reason)
        self._records.event(None, how, reason, "warning")
        for node in list(core.nodes.values()):
            if node.state.terminal or (how == "abort" and node.spec.run_if == RunIf.always):
                continue
            self.cancel_node(node, core.stop_reason())

    def cancel_node(self, node: Node, reason: str) -> None:
        """Cancel one task (a fan-out: each of its items); a running attempt is interrupted
        and records the cancellation itself."""
        if node.state.terminal:
            return
        if node.children is not None:
            for child in node.children:
                self.cancel_node(child, reason)
            return
        if node.state == TaskState.running and node.worker is not None:
            node.cancel_reason = reason
            node.worker.cancel()
            if node.executing:
                return  # the attempt sees the cancellation and records it
            self._dispatcher.release(node)  # dispatched but never started: it will not run
        self.set_terminal(node, TaskState.cancelled, reason=reason)
