"""Which tasks a status shows, chosen without building every task of a large run.

A status lists the first ``top`` tasks in the tool's order and draws a display that keeps the
most relevant rows, each with its fan-out parent. ``StatusRows`` picks those among a run's
nodes in memory; for a run read from the database, ``StatusReads.status`` reads ranked pages and
uses ``known_start`` to tell how much of the display's order the rows read so far settle. The
display's ranking (``status_display_rank``, ``keep_status_rows``) lives here too: the engine's
status reads and ``engine.reports.display`` share it.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from operator import attrgetter
from typing import TYPE_CHECKING, Protocol, TypeVar

from multi_task_orchestrator.engine.state import TaskSnapshot, TaskState

if TYPE_CHECKING:
    from multi_task_orchestrator.engine.run import Node

_position = attrgetter("position")

_RELEVANCE = {TaskState.running: 0, TaskState.retrying: 1, TaskState.failed: 2}
_OTHERS = 3


def status_display_rank(state: TaskState) -> int:
    """Where the status display ranks a task in ``state`` when it must leave rows out: lower
    ranks are kept first, and tasks of one rank go by position."""
    return _RELEVANCE.get(state, _OTHERS)


class StatusRow(Protocol):
    """What choosing the status display's rows reads of a task (a TaskSnapshot, a scheduler
    node)."""

    @property
    def task_id(self) -> str: ...

    @property
    def state(self) -> TaskState: ...


_Row = TypeVar("_Row", bound=StatusRow)


def keep_status_rows(
    ranked: Iterable[_Row], ancestors: Callable[[_Row], list[_Row]], budget: int
) -> set[str]:
    """The ids of the rows the status display keeps out of ``ranked`` (tasks ordered by
    ``(status_display_rank(state), position)``): each in turn with its ancestors when they all
    still fit in ``budget``. ``ranked`` is read only until the budget is used up."""
    chosen: set[str] = set()
    for task in ranked:
        if len(chosen) >= budget:
            break
        needed = {item.task_id for item in [task, *ancestors(task)]} - chosen
        if len(chosen) + len(needed) <= budget:
            chosen |= needed
    return chosen


def ancestors(task: _Row, parent_of: Callable[[_Row], _Row | None]) -> list[_Row]:
    """``task``'s parent, its parent's parent and so on (a loop in the chain ends it), as the
    status display finds them."""
    found: list[_Row] = []
    seen = {task.task_id}
    parent = parent_of(task)
    while parent is not None and parent.task_id not in seen:
        found.append(parent)
        seen.add(parent.task_id)
        parent = parent_of(parent)
    return found


def by_rank(
    by_state: Mapping[TaskState, list[_Row]], rank: Callable[[TaskState], int]
) -> Iterator[_Row]:
    """Every item ordered by ``(rank(state), position)``, lazily; each list of ``by_state``
    holds one state's items in position order."""
    groups: dict[int, list[list[_Row]]] = {}
    for state, items in by_state.items():
        groups.setdefault(rank(state), []).append(items)
    for key in sorted(groups):
        yield from heapq.merge(*groups[key], key=_position)


@dataclasses.dataclass(frozen=True, slots=True)
class StatusRows:
    """Which tasks ``Engine.status`` keeps: what the display shows, and the first ``top``."""

    display_rows: int
    top: int
    rank: dict[TaskState, int]

    @property
    def whole(self) -> int:
        """A run of at most this many tasks is shown whole."""
        return max(self.display_rows, self.top)

    @property
    def budget(self) -> int:
        """Task rows of a display that leaves some out (its last line says how many)."""
        return self.display_rows - 1

    def rank_of(self, state: TaskState) -> int:
        """Where ``top`` ranks a task in ``state``: after every ranked state when unranked."""
        return self.rank.get(state, max(self.rank.values(), default=-1) + 1)

    def pick_nodes(self, by_state: dict[TaskState, list[Node]]) -> set[str]:
        """The ids of the nodes to keep out of a run's (in memory), grouped by state."""
        if sum(map(len, by_state.values())) <= self.whole:
            return {node.task_id for nodes in by_state.values() for node in nodes}
        for items in by_state.values():
            items.sort(key=_position)
        kept = keep_status_rows(by_rank(by_state, status_display_rank), node_ancestors, self.budget)
        for node in islice(by_rank(by_state, self.rank_of), self.top):
            kept.add(node.task_id)
            kept.update(parent.task_id for parent in node_ancestors(node))
        return kept


def node_ancestors(node: Node) -> list[Node]:
    return ancestors(node, attrgetter("parent"))


def rank_in_use(
    rank: Callable[[TaskState], int], counts: Mapping[str, int]
) -> dict[str, int] | None:
    """``rank`` by state name for the database, over the states some task is in; None when
    those all rank alike, and position alone orders the tasks."""
    used = {state: rank(TaskState(state)) for state, number in counts.items() if number}
    return used if len(set(used.values())) > 1 else None


def known_start(
    rows: list[TaskSnapshot],
    counts: Mapping[str, int],
    rank: Callable[[TaskState], int],
    wanted: Callable[[TaskState], int],
) -> list[TaskSnapshot]:
    """The longest start of the run's tasks ordered by ``(wanted(state), position)`` that
    ``rows`` holds, when ``rows`` are the run's first tasks ordered by ``(rank(state),
    position)`` and ``counts`` says how many tasks are in each state."""
    states = [TaskState(state) for state, number in counts.items() if number]
    # Every task of a state whose position is at most its bound is in ``rows``: all of the
    # states ranked before the rank ``rows`` ends in, those of that rank up to its last row.
    bound: dict[TaskState, float] = {}
    read = 0
    for key in sorted({rank(state) for state in states}):
        members = [state for state in states if rank(state) == key]
        size = sum(counts[state] for state in members)
        if read < 0:
            limit = -math.inf
        elif read + size <= len(rows):
            limit, read = math.inf, read + size
        else:
            positions = [task.position for task in rows if rank(task.state) == key]
            limit, read = max(positions, default=-math.inf), -1
        bound.update(dict.fromkeys(members, limit))
    # The wanted order is certain up to the first place where a state has tasks not read.
    end = min(
        ((wanted(state), bound[state]) for state in states if bound[state] < math.inf),
        default=(math.inf, math.inf),
    )
    ordered = sorted(rows, key=lambda task: (wanted(task.state), task.position))
    return [task for task in ordered if (wanted(task.state), task.position) <= end]
