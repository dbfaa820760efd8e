"""JSON values as the data actions compare, order, group and describe them (in error
messages)."""

from __future__ import annotations

import json
import reprlib
from collections.abc import Iterable
from typing import Any

from multi_task_orchestrator.engine.errors import ConfigError

_short = reprlib.Repr()
_short.maxstring = 40
_short.maxother = 40
_short.maxlist = 4
_short.maxdict = 4
_short.maxlevel = 2


def kind(value: Any) -> str:
    """The JSON name of a value's type, with its article."""
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case str():
            return "a string"
        case list() | tuple():
            return "a list"
        case dict():
            return "an object"
    return f"a {type(value).__name__}"


def describe(value: Any) -> str:
    """E.g. ``an object {'a': 1, ...}``: the kind and a short repr, for error messages."""
    name = kind(value)
    return name if value is None else f"{name} {_short.repr(value)}"


def canonical(value: Any) -> str:
    """One text per JSON value, so equal values (including lists and objects) match."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


def is_true(value: Any) -> bool:
    """JMESPath truthiness: null, false and empty strings, lists and objects are false."""
    if value is None or value is False:
        return False
    return not (isinstance(value, str | list | dict) and not value)


def check_orderable(values: Iterable[tuple[str, Any]], what: str, hint: str) -> None:
    """``values`` (label, value; nulls left out) can be put in order: all numbers, all strings
    or all booleans; else a ConfigError naming a value that cannot be ordered, or two that
    cannot be ordered together (``what`` names the action, ``hint`` the fix)."""
    first: tuple[str, Any, str] | None = None
    for label, value in values:
        family = _ORDERED.get(type(value))
        if family is None:
            raise ConfigError(
                f"{what} cannot order {describe(value)} ({label}): only numbers, strings and "
                f"booleans are ordered; {hint}"
            )
        if first is None:
            first = (label, value, family)
        elif family != first[2]:
            raise ConfigError(
                f"{what} cannot order {describe(first[1])} ({first[0]}) and {describe(value)} "
                f"({label}): the values must be all numbers, all strings or all booleans; "
                f"{hint}"
            )


_ORDERED: dict[type, str] = {int: "number", float: "number", str: "string", bool: "boolean"}


def group_label(value: Any) -> str:
    return value if isinstance(value, str) else canonical(value)
