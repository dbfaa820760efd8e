"""Trigger rules (``run_if``): whether a task whose dependencies ended runs, and if not, why it
is skipped — naming the chain of skips back to the task that started it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from multi_task_orchestrator.engine.document.models import RunIf
from multi_task_orchestrator.engine.run.node import Node
from multi_task_orchestrator.engine.state import TaskState


def trigger_blocks(node: Node, nodes: Mapping[str, Node]) -> str | None:
    """Why ``node`` is skipped, or None when its rule lets it run. A skip because of a
    dependency sets the node's ``chain`` and ``root_error``."""
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
        return f"dependency {dep.task_id} was skipped ({root_cause(node.chain, nodes)})"
    return None


def root_cause(chain: Sequence[str], nodes: Mapping[str, Node]) -> str:
    """What a chain of skips (``chain``: from a skipped dependency to the task that started
    it) comes from, e.g. ``chain: c -> b -> a; a failed: boom``."""
    root = nodes.get(chain[-1])
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
