"""How a run ends: its final status and the error it reports, from its tasks' states."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from multi_task_orchestrator.engine.run.node import Node
from multi_task_orchestrator.engine.state import RunStatus, TaskState


def run_outcome(
    nodes: Collection[Node],
    ordered: Callable[[], Iterable[Node]],
    stopping: str | None,
    error: str | None,
) -> tuple[RunStatus, str | None]:
    """The run's final state, and its error. ``ordered`` gives the nodes in display order
    (only asked for when tasks were cancelled); ``stopping`` is how the run was stopped, if it
    was."""
    states = {node.state for node in nodes}
    if stopping == "cancel":
        return RunStatus.cancelled, error
    if states <= {TaskState.succeeded} and not stopping:
        return RunStatus.succeeded, error
    if error is None and TaskState.cancelled in states:
        return RunStatus.failed, cancelled_tasks(ordered())
    return RunStatus.failed, error


def cancelled_tasks(ordered: Iterable[Node]) -> str | None:
    """What a run some of whose tasks were cancelled (the run itself was not) says, e.g.
    ``task long was cancelled (cancelled by request)``."""
    cancelled = [
        node for node in ordered if node.state == TaskState.cancelled and not node.children
    ]
    if not cancelled:
        return None
    reason = f" ({cancelled[0].reason})" if cancelled[0].reason else ""
    if len(cancelled) == 1:
        return f"task {cancelled[0].task_id} was cancelled{reason}"
    names = ", ".join(node.task_id for node in cancelled[:5])
    more = f" and {len(cancelled) - 5} more" if len(cancelled) > 5 else ""
    return f"{len(cancelled)} tasks were cancelled: {names}{more}{reason}"
