"""Fan-out: checking a task's items, making one child per item, and summing up the items that
did not succeed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from multi_task_orchestrator.engine.expressions import ExpressionError
from multi_task_orchestrator.engine.run.node import Node


@dataclass(frozen=True, slots=True)
class FanoutProblem:
    """Why a task's items cannot be fanned out (a ``config`` failure of the task)."""

    message: str


def fanout_items(items: Any, limit: int) -> list[Any] | FanoutProblem:
    """The items as a list (a mapping gives ``{key, value}`` items), or what is wrong with them."""
    if isinstance(items, ExpressionError):
        return FanoutProblem(f"for_each: {items.message}")
    if isinstance(items, dict):
        items = [{"key": key, "value": value} for key, value in items.items()]
    if not isinstance(items, list):
        kind = "nothing" if items is None else type(items).__name__
        return FanoutProblem(f"for_each must give a list, it gave {kind}")
    if len(items) > limit:
        return FanoutProblem(
            f"for_each gave {len(items)} items, more than the limit of {limit}; "
            "split the work or raise ORCHESTRATOR_MAX_TASKS"
        )
    return items


def make_child(parent: Node, index: int, item: Any) -> Node:
    """The child of ``parent`` for its ``index``-th item (not yet known to the run)."""
    return Node(
        spec=parent.spec,
        task_id=f"{parent.task_id}[{index}]",
        position=parent.position + index + 1,
        stage=parent.stage,
        parent=parent,
        item=item,
        index=index,
        pools=parent.pools,
        retry=parent.retry,
    )


def items_summary(items: list[Node], total: int, *, failed: bool) -> str:
    """E.g. ``2 of 6 item(s) failed: each[1] (boom), each[4] (boom)``, or for items that were
    all cancelled for one reason ``6 of 6 item(s) cancelled (cancelled with Ctrl-C)``."""
    head = f"{len(items)} of {total} item(s) {'failed' if failed else 'cancelled'}"
    reasons = {item.reason for item in items}
    if not failed and len(reasons) == 1 and None not in reasons:
        return f"{head} ({reasons.pop()})"
    listed = ", ".join(
        f"{item.task_id} ({item.error or item.reason or item.state.value})" for item in items[:3]
    )
    more = f" and {len(items) - 3} more" if len(items) > 3 else ""
    return f"{head}: {listed}{more}"
