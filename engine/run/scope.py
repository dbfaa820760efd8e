"""What a task's ``${...}`` references read: the outputs of the run's finished tasks, the
document's vars, and a fan-out child's item; and reading the outputs kept as files that a
reference needs, off the event loop."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from typing import Any

from multi_task_orchestrator.engine import outputs
from multi_task_orchestrator.engine.cpu_work import cpu_bound
from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.expressions import Scope
from multi_task_orchestrator.engine.run.core import RunCore
from multi_task_orchestrator.engine.run.node import Node


def scope_of(core: RunCore, node: Node, read: Mapping[str, Any] | None = None) -> Scope:
    """The scope ``node``'s config (or ``for_each``) is resolved in; ``read`` holds outputs
    already read from their files, by task id."""
    return Scope(
        outputs=FinishedOutputs(core, read or {}),
        vars=core.spec.vars,
        item=node.item,
        index=node.index,
        has_item=node.parent is not None,
    )


def kept_in_files(core: RunCore, roots: Iterable[str]) -> dict[str, Any]:
    """The references to their files of the outputs of ``roots`` (task ids) kept as files."""
    nodes = core.nodes
    return {
        root: json.loads(stored)
        for root in roots
        if (source := nodes.get(root)) is not None
        and source.output is None
        and (stored := source.output_json) is not None
        and outputs.reference(stored)
    }


async def read_kept(core: RunCore, held: dict[str, Any]) -> dict[str, Any]:
    """The outputs ``held`` (``kept_in_files``) refers to, read on a worker thread: a 200 MB
    one takes a second to read. Raises TaskError (class config) when a file is gone or cannot
    be read: the task that needs it fails, the run goes on."""
    if not held:
        return held
    try:
        return await cpu_bound(partial(outputs.load_files, held, core.run_dir))
    except OSError as exc:
        raise TaskError(f"an output it refers to cannot be read: {exc}", "config") from None


class FinishedOutputs(Mapping[str, Any]):
    """The reference scope's view of finished tasks, built on demand (never copied); an
    output kept as a file is read from it unless ``read`` has it already."""

    __slots__ = ("_core", "_nodes", "_read")

    def __init__(self, core: RunCore, read: Mapping[str, Any]) -> None:
        self._core = core
        self._nodes = core.nodes
        self._read = read

    def __contains__(self, task_id: object) -> bool:  # without reading the output
        node = self._nodes.get(task_id) if isinstance(task_id, str) else None
        return node is not None and node.state.terminal

    def __getitem__(self, task_id: str) -> dict[str, Any]:
        node = self._nodes[task_id]
        if not node.state.terminal:
            raise KeyError(task_id)
        read = self._read
        return {
            "output": read[task_id] if task_id in read else self._core.output_of(node),
            "state": node.state.value,
            "error": node.error,
        }

    def __iter__(self) -> Iterator[str]:
        return (tid for tid, node in self._nodes.items() if node.state.terminal)

    def __len__(self) -> int:
        return sum(1 for node in self._nodes.values() if node.state.terminal)
