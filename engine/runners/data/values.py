"""JSON values as the data actions compare, order, group and describe them (in error
messages)."""

from __future__ import annotations

import json
import reprlib
from typing import Any

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


def order_key(value: Any) -> tuple[str, Any]:
    """A sort key that orders mixed types by type name instead of failing."""
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    return (kind(value).split()[-1], canonical(value))


def group_label(value: Any) -> str:
    return value if isinstance(value, str) else canonical(value)
