"""Every reference inside a document's value, with where it is (``find_references``), and the
secrets it names (``secret_names``): what validation checks before anything runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from multi_task_orchestrator.engine.expressions.model import (
    INPUT_KEYS,
    ExpressionError,
    Location,
    Reference,
)
from multi_task_orchestrator.engine.expressions.parsing import analyse
from multi_task_orchestrator.engine.expressions.scanning import (
    WHOLE_PLAIN_REFERENCE,
    Ref,
    Unclosed,
    is_bare_reference,
    scan,
    unclosed_error,
)


def find_references(
    value: Any, loc: Location = ()
) -> list[tuple[Location, Reference | ExpressionError]]:
    """Every reference inside ``value`` with the location of the string that holds it.

    A malformed reference is listed as its ExpressionError, so all of them can be reported at
    once. A whole-scope expression is listed once per name it reads.
    """
    found: list[tuple[Location, Reference | ExpressionError]] = []
    strings: list[tuple[Location, str, bool]] = []
    _strings(value, tuple(loc), False, strings)
    for where, text, under_input_key in strings:
        if under_input_key and is_bare_reference(text):
            inners: list[str | ExpressionError] = [text]
        elif whole := WHOLE_PLAIN_REFERENCE.fullmatch(text):  # what scan finds, faster
            inners = [whole.group(1)]
        elif "${" in text:
            inners = [
                segment.inner if isinstance(segment, Ref) else unclosed_error(segment.raw)
                for segment in scan(text)
                if isinstance(segment, Ref | Unclosed)
            ]
        else:
            continue
        for inner in inners:
            if isinstance(inner, ExpressionError):
                found.append((where, inner))
                continue
            try:
                found.extend((where, reference) for reference in analyse(inner).refs)
            except ExpressionError as error:
                found.append((where, error))
    return found


def _strings(
    value: Any, loc: Location, under_input_key: bool, out: list[tuple[Location, str, bool]]
) -> None:
    """Add to ``out`` each string in ``value`` that may hold a reference (one with ``${``, or
    any directly under an ``inputs:`` key), with its location and whether it is under one.

    Strings and numbers inside a container are judged in its loop: most values of a config are
    plain, and a call with a new location for each would cost more than the rest of the walk.
    """
    if isinstance(value, str):
        if under_input_key or "${" in value:
            out.append((loc, value, under_input_key))
    elif isinstance(value, dict) or (
        not isinstance(value, (list, tuple)) and isinstance(value, Mapping)  # the ABC is slow
    ):
        for key, child in value.items():
            if isinstance(child, str):
                if "${" in child or key in INPUT_KEYS:
                    out.append(((*loc, key), child, key in INPUT_KEYS))
            elif not isinstance(child, _LEAVES):
                _strings(child, (*loc, key), key in INPUT_KEYS, out)
    elif isinstance(value, list | tuple):
        for position, child in enumerate(value):
            if isinstance(child, str):
                if under_input_key or "${" in child:
                    out.append(((*loc, position), child, under_input_key))
            elif not isinstance(child, _LEAVES):
                _strings(child, (*loc, position), False, out)


_LEAVES = (int, float, type(None))  # values without strings inside (bool is an int)


def holds_escape(value: Any) -> bool:
    """Whether a string inside ``value`` holds a ``$${`` escape, which resolving turns into a
    literal ``${``: a config with one has something to resolve though it has no reference."""
    strings: list[tuple[Location, str, bool]] = []
    _strings(value, (), False, strings)
    return any("$${" in text for _, text, _ in strings)


def secret_names(value: Any) -> set[str]:
    """The name of every ``${vault.NAME}`` inside ``value``."""
    return {
        reference.path
        for _, reference in find_references(value)
        if isinstance(reference, Reference) and reference.kind == "vault"
    }


def task_roots(value: Any) -> frozenset[str]:
    """The tasks whose entries the references inside ``value`` read (``${fetch.output}``:
    ``fetch``)."""
    return frozenset(
        reference.root
        for _, reference in find_references(value)
        if isinstance(reference, Reference) and reference.kind == "task"
    )
