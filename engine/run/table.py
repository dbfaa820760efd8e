"""The run's node table: one node per task (fan-out children join as they appear), in document
order, with the stages that gate them; built in slices so a large document does not hold up
the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

from multi_task_orchestrator.engine.document.models import (
    ErrorClass,
    Orchestration,
    RetryPolicy,
    Strategy,
)
from multi_task_orchestrator.engine.document.plan import execution_stages
from multi_task_orchestrator.engine.expressions import Reference, find_references, holds_escape
from multi_task_orchestrator.engine.pools import Pool
from multi_task_orchestrator.engine.run.node import Node

SLICE = 500  # tasks built between two chances for the event loop to run something else


@dataclass(eq=False, slots=True)
class NodeTable:
    """Every node of a run, and the stages (barriers) they wait behind."""

    nodes: dict[str, Node] = field(default_factory=dict)  # by task id, children included
    order: list[Node] = field(default_factory=list)  # the document's tasks, in its order
    stage_keys: list[int] = field(default_factory=list)  # stage numbers, ascending
    stage_position: dict[int, int] = field(default_factory=dict)  # stage number -> index
    stage_members: dict[int, list[Node]] = field(default_factory=dict)
    stage_open: dict[int, int] = field(default_factory=dict)  # stage -> tasks not ended
    current_stage: int = 0  # index of the stage tasks may start in
    secret_names: dict[str, frozenset[str]] = field(default_factory=dict)  # per task with ${ or $${

    def add(self, child: Node) -> Node:
        """A fan-out child joins the table."""
        self.nodes[child.task_id] = child
        return child

    def release(self) -> None:
        """Let every node go (the run ended and its snapshot was made): the links between
        nodes are cut, so each is freed as soon as nothing else holds it, not by the next
        collection of cycles — a large run's nodes are tens of megabytes."""
        for node in self.nodes.values():
            node.deps = node.dependents = ()
            node.parent = None
            node.children = None
        self.nodes.clear()
        self.order.clear()
        self.stage_members.clear()

    def ordered(self) -> Iterator[Node]:
        """Every node in display order: each task, then its fan-out children."""
        for node in self.order:
            yield node
            if node.children:
                yield from node.children

    def is_static(self, task_id: str) -> bool:
        """Whether the task's config has no ``${...}`` and no ``$${``: nothing to resolve before it
        runs."""
        return task_id not in self.secret_names

    def stage_index(self, node: Node) -> int:
        return self.stage_position[node.stage]

    def stage_ids(self, stage: int) -> list[str]:
        return [node.task_id for node in self.stage_members[stage]]

    def arm(self) -> int:
        """Count, from the nodes' states (fresh, or restored), what each node and stage waits
        for, and open the first stage with work left; return how many nodes have not ended."""
        open_nodes = 0
        for node in self.order:
            if not node.state.terminal:
                open_nodes += 1
            if node.children:
                open_nodes += sum(1 for child in node.children if not child.state.terminal)
        for stage in self.stage_keys:
            self.stage_open[stage] = sum(
                1 for node in self.stage_members[stage] if not node.state.terminal
            )
        self.current_stage = 0
        while (
            self.current_stage < len(self.stage_keys) - 1
            and self.stage_open[self.stage_keys[self.current_stage]] == 0
        ):
            self.current_stage += 1
        for node in self.order:
            if node.state.terminal:
                continue
            gate = 1 if self.stage_index(node) > self.current_stage else 0
            node.waiting = gate + sum(1 for dep in node.deps if not dep.state.terminal)
        return open_nodes


async def build_table(
    spec: Orchestration, server_pool: Pool, slotless: Collection[str] = ()
) -> NodeTable:
    """The nodes of ``spec``'s tasks, linked to their dependencies and stages; the event loop
    runs other work between slices of ``SLICE`` tasks. Tasks of the types ``slotless`` names
    (their runner holds no slot while it runs, e.g. ``approval``) need no pool."""
    table = NodeTable()
    default_retry = None
    if spec.on_failure.strategy == Strategy.retry:
        default_retry = RetryPolicy(
            max_attempts=spec.on_failure.max_retries + 1, on=(ErrorClass.any,)
        )
    stage_of = {
        task_id: number for number, ids in enumerate(execution_stages(spec)) for task_id in ids
    }
    orchestration_pool = Pool("orchestration", spec.max_concurrent, None, kind="orchestration")
    limit_pools = {
        name: Pool(name, limit.concurrency, limit.rate) for name, limit in spec.limits.items()
    }
    pool_sets: dict[tuple[str, ...], tuple[Pool, ...]] = {}  # one tuple per set of limits
    tasks = spec.tasks
    for start in range(0, len(tasks), SLICE):
        if start:
            await asyncio.sleep(0)
        for position in range(start, min(start + SLICE, len(tasks))):
            task = tasks[position]
            references = find_references(task.config)
            if references or holds_escape(task.config):
                table.secret_names[task.id] = frozenset(
                    reference.path
                    for _, reference in references
                    if isinstance(reference, Reference) and reference.kind == "vault"
                )
            pools: tuple[Pool, ...] = ()
            if task.type not in slotless:
                pools = pool_sets.get(task.limit, ())
                if not pools:
                    limited = tuple(limit_pools[name] for name in task.limit)
                    pools = pool_sets[task.limit] = (server_pool, orchestration_pool, *limited)
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
            table.nodes[task.id] = node
            table.order.append(node)
    if len(tasks) > SLICE:
        await asyncio.sleep(0)
    dependents: dict[Node, list[Node]] = {}
    for node in table.order:
        if node.spec.dependencies:
            node.deps = tuple(table.nodes[dep] for dep in node.spec.dependencies)
            for dep in node.deps:
                dependents.setdefault(dep, []).append(node)
        table.stage_members.setdefault(node.stage, []).append(node)
        table.stage_open[node.stage] = table.stage_open.get(node.stage, 0) + 1
    for node, linked in dependents.items():
        node.dependents = tuple(linked)
    table.stage_keys = sorted(table.stage_members)
    table.stage_position = {stage: index for index, stage in enumerate(table.stage_keys)}
    return table
