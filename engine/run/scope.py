"""What a task's ``${...}`` references read: the outputs of the run's finished tasks, the
document's vars, and a fan-out child's item."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from multi_task_orchestrator.engine.expressions import Scope
from multi_task_orchestrator.engine.run.core import RunCore
from multi_task_orchestrator.engine.run.node import Node


def scope_of(core: RunCore, node: Node) -> Scope:
    """The scope ``node``'s config (or ``for_each``) is resolved in."""
    return Scope(
        outputs=FinishedOutputs(core),
        vars=core.spec.vars,
        item=node.item,
        index=node.index,
        has_item=node.parent is not None,
    )


class FinishedOutputs(Mapping[str, Any]):
    """The reference scope's view of finished tasks, built on demand (never copied)."""

    __slots__ = ("_core", "_nodes")

    def __init__(self, core: RunCore) -> None:
        self._core = core
        self._nodes = core.nodes

    def __getitem__(self, task_id: str) -> dict[str, Any]:
        node = self._nodes[task_id]
        if not node.state.terminal:
            raise KeyError(task_id)
        return {
            "output": self._core.output_of(node),
            "state": node.state.value,
            "error": node.error,
        }

    def __iter__(self) -> Iterator[str]:
        return (tid for tid, node in self._nodes.items() if node.state.terminal)

    def __len__(self) -> int:
        return sum(1 for node in self._nodes.values() if node.state.terminal)
