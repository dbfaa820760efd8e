"""Graph algorithms over a plain mapping of node -> its dependencies; no document knowledge.

A graph is a ``Mapping[str, Sequence[str]]`` in a fixed order (document order, for the callers):
each node with the nodes it depends on, ``a -> b`` meaning a depends on b. Dependencies on nodes
not in the mapping are ignored everywhere. Everything here is iterative, so a chain of thousands
of nodes does not hit recursion limits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")
Graph = Mapping[str, Sequence[str]]


def fold(graph: Graph, value: Callable[[str, dict[str, T]], T]) -> dict[str, T]:
    """Compute ``value(node, {dep: its value})`` for each node, dependencies first.

    Dependencies on unknown nodes, and the edge that would close a cycle, are left out, so this
    works on any graph. The result is in the graph's order.
    """
    done: dict[str, T] = {}
    # Documents mostly list each task after its dependencies, so one pass in order does; it stops
    # at the first node that depends on a later one. What it did the walk below would do the same.
    for node, deps in graph.items():
        if deps and not all(dep in done or dep not in graph for dep in deps):
            break
        done[node] = value(node, {dep: done[dep] for dep in deps if dep in done})
    for start in graph:
        if start in done:
            continue
        stack = [(start, iter(graph[start]))]
        on_stack = {start}
        while stack:
            node, pending = stack[-1]
            for dep in pending:
                if dep in graph and dep not in done and dep not in on_stack:
                    stack.append((dep, iter(graph[dep])))
                    on_stack.add(dep)
                    break
            else:
                stack.pop()
                on_stack.discard(node)
                done[node] = value(node, {d: done[d] for d in graph[node] if d in done})
    return {node: done[node] for node in graph}


def levels(graph: Graph) -> dict[str, int]:
    """Each node's level: 0 without dependencies, else one more than its deepest dependency."""
    return fold(graph, lambda _, deps: 1 + max(deps.values()) if deps else 0)


def stages(graph: Graph, given: Mapping[str, int], lowest: int) -> dict[str, int]:
    """Each node's stage: its number in ``given``; without one, the highest stage of its
    dependencies, or ``lowest`` when it has none."""

    def stage(node: str, deps: dict[str, int]) -> int:
        if node in given:
            return given[node]
        return max(deps.values()) if deps else lowest

    return fold(graph, stage)


def group(numbers: Mapping[str, int]) -> list[list[str]]:
    """Nodes grouped by number, groups in ascending order, nodes in the mapping's order."""
    groups: dict[int, list[str]] = {}
    for node, number in numbers.items():
        groups.setdefault(number, []).append(node)
    return [groups[number] for number in sorted(groups)]


def reachable(starts: Iterable[str], graph: Graph) -> set[str]:
    """Every node reached from ``starts`` through dependencies, ``starts`` included."""
    found: set[str] = set()
    pending = [node for node in starts if node in graph]
    while pending:
        node = pending.pop()
        if node in found:
            continue
        found.add(node)
        pending.extend(dep for dep in graph[node] if dep in graph)
    return found


def ancestors(graph: Graph) -> dict[str, set[str]]:
    """Each node's transitive dependencies."""
    return {node: reachable(deps, graph) for node, deps in graph.items()}


class Reach:
    """What each node of ``graph`` reaches through its dependencies, as bitsets over the
    graph's nodes; built for the whole graph on the first question."""

    __slots__ = ("_bits", "graph", "position")

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.position: dict[str, int] = {}
        self._bits: dict[str, int] | None = None

    def of(self, dependencies: Iterable[str]) -> int:
        """``reachable(dependencies, graph)`` as a bitset."""
        if self._bits is None:
            self.position = {node: n for n, node in enumerate(self.graph)}
            self._bits = _ancestor_bits(self.graph, self.position)
        bits = 0
        for dep in dependencies:
            if dep in self.graph:
                bits |= self._bits[dep] | 1 << self.position[dep]
        return bits


class Ancestors:
    """A node's transitive dependencies as ``reachable`` finds them, for ``in`` only.

    Its own dependencies answer at once, and most questions name one; anything else is looked
    up in the graph's bitsets (``Reach``), so no node walks the whole graph above it.
    """

    __slots__ = ("_bits", "_dependencies", "_direct", "_reach")

    def __init__(self, dependencies: Sequence[str], reach: Reach) -> None:
        self._dependencies = dependencies
        self._reach = reach
        self._direct: set[str] | None = None
        self._bits: int | None = None

    def __contains__(self, node: object) -> bool:
        if not isinstance(node, str) or node not in self._reach.graph:
            return False
        if self._direct is None:
            self._direct = set(self._dependencies)
        if node in self._direct:
            return True
        if self._bits is None:
            self._bits = self._reach.of(self._dependencies)
        return bool(self._bits >> self._reach.position[node] & 1)


def _ancestor_bits(graph: Graph, position: Mapping[str, int]) -> dict[str, int]:
    """Each node's transitive dependencies (``reachable`` of its own) as a bitset over
    ``position``, in one pass over the edges.

    Nodes in a cycle reach one another, so this works on strongly connected components (Tarjan's
    algorithm, iterative): a component is complete before any that depends on it, so its set is
    the union of the sets below it, plus its own nodes when it is a cycle.
    """
    order: dict[str, int] = {}  # when each node was first visited
    low: dict[str, int] = {}
    open_nodes: list[str] = []  # visited nodes whose component is not complete yet
    is_open: set[str] = set()
    bits: dict[str, int] = {}
    for start in graph:
        if start in order:
            continue
        order[start] = low[start] = len(order)
        open_nodes.append(start)
        is_open.add(start)
        work = [(start, iter(graph[start]))]
        while work:
            node, pending = work[-1]
            for dep in pending:
                if dep not in graph:
                    continue
                if dep not in order:
                    order[dep] = low[dep] = len(order)
                    open_nodes.append(dep)
                    is_open.add(dep)
                    work.append((dep, iter(graph[dep])))
                    break
                if dep in is_open:
                    low[node] = min(low[node], order[dep])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] != order[node]:
                    continue
                members: list[str] = []
                while not members or members[-1] != node:
                    members.append(open_nodes.pop())
                    is_open.discard(members[-1])
                inside = set(members)
                union = 0
                cyclic = len(members) > 1
                for member in members:
                    for dep in graph[member]:
                        if dep in inside:
                            cyclic = True
                        elif dep in graph:
                            union |= bits[dep] | 1 << position[dep]
                if cyclic:
                    for member in members:
                        union |= 1 << position[member]
                for member in members:
                    bits[member] = union
    return bits


def cycles(graph: Graph, rank: Callable[[str], int]) -> list[list[str]]:
    """Each dependency cycle once, as a path that returns to its start: ``[a, b, c, a]``.

    A cycle starts at its node that sorts first by ``rank``.
    """
    found: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    finished: set[str] = set()
    for start in graph:
        if start in finished:
            continue
        path = [start]
        on_path = {start: 0}
        stack = [iter(graph[start])]
        while stack:
            for dep in stack[-1]:
                if dep not in graph or dep in finished:
                    continue
                if dep in on_path:
                    loop = path[on_path[dep] :]
                    first = min(range(len(loop)), key=lambda n: rank(loop[n]))
                    loop = loop[first:] + loop[:first]
                    if tuple(loop) not in seen:
                        seen.add(tuple(loop))
                        found.append([*loop, loop[0]])
                    continue
                on_path[dep] = len(path)
                path.append(dep)
                stack.append(iter(graph[dep]))
                break
            else:
                stack.pop()
                done = path.pop()
                del on_path[done]
                finished.add(done)
    return found


def chains(graph: Graph) -> dict[str, tuple[int, str | None]]:
    """For each node (in the graph's order): how many nodes the longest chain ending with it
    has, and its dependency in that chain (ties go to the earliest). The count is also the
    node's ``levels`` level plus one."""
    position = {node: n for n, node in enumerate(graph)}

    def longest(_: str, deps: dict[str, tuple[int, str | None]]) -> tuple[int, str | None]:
        if not deps:
            return 1, None
        best = min(deps, key=lambda d: (-deps[d][0], position[d]))
        return deps[best][0] + 1, best

    return fold(graph, longest)


def longest_path(found: Mapping[str, tuple[int, str | None]]) -> list[str]:
    """The critical path from ``chains``: the longest chain by node count, ties going to the
    node earliest in the graph."""
    if not found:
        return []
    end: str | None = max(found, key=lambda node: found[node][0])  # the first of the longest
    path: list[str] = []
    while end is not None:
        path.append(end)
        end = found[end][1]
    return path[::-1]
