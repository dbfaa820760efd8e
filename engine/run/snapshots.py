"""What a run looks like at one moment: ``RunSnapshot`` and ``TaskSnapshot`` built from its
nodes (a run of this process) — and the one builder of a task's snapshot, which a stored
task row goes through too (``Engine.snapshot`` of a run read from the database)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from multi_task_orchestrator.engine.run.core import RunCore
from multi_task_orchestrator.engine.run.node import Node, held_output
from multi_task_orchestrator.engine.state import RunSnapshot, TaskSnapshot, TaskState
from multi_task_orchestrator.engine.usage import RunUsage


class TaskFields(Protocol):
    """What a task's snapshot is made of: a node of a running run, or a stored task row."""

    @property
    def task_id(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def position(self) -> int: ...
    @property
    def parent_id(self) -> str | None: ...
    @property
    def attempts(self) -> int: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def started_at(self) -> float | None: ...
    @property
    def finished_at(self) -> float | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def error_class(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def chain(self) -> Sequence[str]: ...
    @property
    def output_json(self) -> str | None: ...


def task_snapshot(
    task: TaskFields,
    *,
    waiting_for: str | None = None,
    output: Any = None,
    has_output: bool | None = None,
) -> TaskSnapshot:
    """``task`` as status and reports see it; ``has_output`` says whether it has an output
    when it was read without one (by default: whether ``output_json`` holds one)."""
    state = task.state
    snapshot = TaskSnapshot(
        task_id=task.task_id,
        label=task.label,
        type=task.type,
        state=state if isinstance(state, TaskState) else TaskState(state),
        position=task.position,
        parent_id=task.parent_id,
        attempts=task.attempts,
        max_attempts=task.max_attempts,
        started_at=task.started_at,
        finished_at=task.finished_at,
        error=task.error,
        error_class=task.error_class,
        reason=task.reason,
        chain=list(task.chain),
        waiting_for=waiting_for,
        output=output,
        has_output=task.output_json is not None if has_output is None else has_output,
    )
    # Every snapshot has all its fields set: they share one set of their names (what
    # ``model_construct(_fields_set=...)`` does) instead of a set each, ~0.7 KB of a ~1.5 KB
    # snapshot, times every task of a run at its end and in each full status.
    object.__setattr__(snapshot, "__pydantic_fields_set__", _ALL_FIELDS)
    return snapshot


_ALL_FIELDS = set(TaskSnapshot.model_fields)  # never changes: every name is in it already


class Snapshots:
    """Snapshots of one run of this process, from its nodes."""

    def __init__(
        self,
        core: RunCore,
        waiting_for: Callable[[Node], str | None],
        usage: Callable[[], RunUsage | None],
    ) -> None:
        self._core = core
        self._waiting_for = waiting_for
        self._usage = usage
        # the run as it ended (without outputs), built once for its run-end listeners and
        # handed to whoever waited for the end: it no longer changes
        self.final: RunSnapshot | None = None

    def snapshot(
        self, *, include_outputs: bool = False, load_output_files: bool = True
    ) -> RunSnapshot:
        """The run now. Outputs kept as files are read back unless ``load_output_files`` is
        false, when their reference (``{"$output_file": ..., "bytes": ...}``) stands in."""
        if self.final is not None and not include_outputs:
            return self.final
        loader = self._core.output_of if load_output_files else held_output
        tasks = [
            self._task(node, loader(node) if include_outputs else None)
            for node in self._core.table.ordered()
        ]
        return self._run(tasks)

    def held_outputs(self) -> dict[str, Any]:
        """The outputs of the tasks that have one other than null, by task id, as held (the
        reference to the file a large one went to stands in for it)."""
        held = (
            (node.task_id, held_output(node))
            for node in self._core.table.ordered()
            if node.output is not None or (node.output_json not in (None, "null"))
        )
        return {task_id: output for task_id, output in held if output is not None}

    def status_snapshot(
        self, task_ids: set[str], by_state: Mapping[TaskState, list[Node]]
    ) -> RunSnapshot:
        """The run as a status reads it: the tasks ``task_ids`` names, built as ``snapshot``
        builds them (without outputs), in document order, and every task's state counted in
        ``task_counts`` (from ``by_state``: the nodes grouped by state) — None when
        ``task_ids`` names every task, as in ``snapshot``."""
        table = self._core.nodes
        shown = sorted((table[task_id] for task_id in task_ids), key=_position)
        tasks = [self._task(node, None) for node in shown]
        counts = {state.value: len(nodes) for state, nodes in by_state.items() if nodes}
        if len(tasks) == sum(counts.values()):
            return self._run(tasks)
        snapshot = self._run(tasks, task_counts=counts)
        running = by_state.get(TaskState.running, ())
        snapshot.fan_outs_running = sum(1 for node in running if node.children)
        return snapshot

    def _task(self, node: Node, output: Any) -> TaskSnapshot:
        return task_snapshot(node, waiting_for=self._waiting_for(node), output=output)

    def _run(
        self, tasks: list[TaskSnapshot], task_counts: dict[str, int] | None = None
    ) -> RunSnapshot:
        core = self._core
        return RunSnapshot(
            id=core.id,
            name=core.spec.name,
            status=core.status,
            created_at=core.created_at,
            started_at=core.started_at,
            finished_at=core.finished_at,
            error=core.error,
            max_parallel=core.max_parallel,
            run_dir=str(core.run_dir),
            tasks=tasks,
            task_counts=task_counts,
            usage=self._usage(),
        )


_position = operator.attrgetter("position")
