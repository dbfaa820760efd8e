"""JMESPath's syntax tree, read: which names an expression reads from the top-level scope,
and the plain steps (keys and indexes) a path is made of or starts with."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from multi_task_orchestrator.engine.expressions.model import Step

_SEQUENCE_NODES = frozenset({"subexpression", "index_expression"})
_LEFT_AT_ROOT_NODES = frozenset({"projection", "filter_projection", "value_projection", "pipe"})


def nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every node of the tree under ``node``, ``node`` first."""
    if isinstance(node, dict):
        yield node
        for child in node.get("children", ()):
            yield from nodes(child)


def plain_steps(node: Any) -> tuple[Step, ...] | None:
    """The steps of a path made only of names and indexes (``a.b[0].c``), else None."""
    kind = node.get("type") if isinstance(node, dict) else None
    if kind == "field" or kind == "index":
        return (node["value"],)
    if kind == "identity":
        return ()
    if kind in _SEQUENCE_NODES:
        steps: tuple[Step, ...] = ()
        for child in node["children"]:
            more = plain_steps(child)
            if more is None:
                return None
            steps += more
        return steps
    return None


def _steps_in_sequence(children: list[Any]) -> tuple[Step, ...]:
    steps: tuple[Step, ...] = ()
    for child in children:
        more = plain_steps(child)
        if more is None:
            return steps + leading_steps(child)
        steps += more
    return steps


def leading_steps(node: Any) -> tuple[Step, ...]:
    """The plain steps an expression starts with, whatever it does afterwards."""
    kind = node.get("type") if isinstance(node, dict) else None
    if kind in _SEQUENCE_NODES:
        return _steps_in_sequence(node["children"])
    if kind in _LEFT_AT_ROOT_NODES or kind == "flatten":
        return leading_steps(node["children"][0])
    return plain_steps(node) or ()


def root_reads(node: Any) -> list[tuple[str, tuple[Step, ...]]]:
    """Each name read from the top-level value, with the plain steps that follow it."""
    reads: list[tuple[str, tuple[Step, ...]]] = []

    def visit(node: Any, at_root: bool) -> None:
        if not isinstance(node, dict):
            return
        kind, children = node.get("type"), node.get("children", [])
        if kind == "field":
            if at_root:
                reads.append((node["value"], ()))
        elif kind in ("current", "identity"):
            if at_root:
                reads.append(("@", ()))
        elif kind in _SEQUENCE_NODES:
            head = children[0]
            if at_root and isinstance(head, dict) and head.get("type") == "field":
                reads.append((head["value"], _steps_in_sequence(children[1:])))
            else:
                visit(head, at_root)
            for child in children[1:]:
                visit(child, False)
        elif kind in _LEFT_AT_ROOT_NODES:
            visit(children[0], at_root)
            for child in children[1:]:
                visit(child, False)
        elif kind == "expref":
            for child in children:
                visit(child, False)
        else:
            for child in children:
                visit(child, at_root)

    visit(node, True)
    return reads
