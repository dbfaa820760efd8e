"""YAML read in one pass over libyaml's events straight to JSON values, for the common document.

``hardened_yaml`` composes a node tree, records where every value sits, measures aliases and
then builds the values: about twice libyaml's own time. Most documents need none of that unless
something is wrong with them, so ``read`` builds the values as the events arrive, with nesting
bounded as it goes, and gives up (``Careful``) on anything the careful path must read or report:
a syntax error, nesting past the limit, an alias, an explicit tag, a merge key (``<<``), a key
that is a list or a mapping or appears twice, a value its tag cannot read. What it does build
is what the careful path builds from the same text: the same resolver and constructors turn
each scalar into its value.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import (
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import ScalarNode

from multi_task_orchestrator.engine.document.hardened_yaml import JsonConstructor, Yaml12Resolver

AVAILABLE: bool = yaml.__with_libyaml__  # without libyaml there are only PyYAML's own events


class Careful(Exception):
    """The text holds something only the careful path reads or reports; read it that way."""


class _NoValue:
    """The root before it is read, and a mapping's key before it is."""


_NO_VALUE = _NoValue()
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_EMPTY_DOCUMENT = (False, None)


class _Scalars(JsonConstructor, Yaml12Resolver):
    """Turns a plain scalar into its value the way the careful path does, once per text."""

    def __init__(self) -> None:
        JsonConstructor.__init__(self)
        Yaml12Resolver.__init__(self)
        self.known: dict[str, Any] = {}

    def plain(self, text: str) -> Any:
        tag = self.resolve(ScalarNode, text, (True, False))
        constructor = self.yaml_constructors.get(tag)
        if tag == _MERGE or constructor is None:
            raise Careful
        try:
            value = constructor(self, ScalarNode(tag, text))
        except Exception:  # what the constructor refuses, the careful path reports
            raise Careful from None
        self.known[text] = value
        return value


def read(text: str, max_depth: int) -> tuple[bool, Any]:
    """``(True, value)`` of the single document in ``text``, or ``(False, None)`` when the text
    holds none; raises ``Careful`` for what it does not read (see the module's docstring)."""
    if not AVAILABLE:
        raise Careful
    try:
        parser = yaml.cyaml.CParser(text)
    except (yaml.YAMLError, ValueError):
        raise Careful from None
    try:
        return _build(parser.get_event, max_depth)
    except (yaml.YAMLError, ValueError):  # ValueError: text libyaml cannot encode
        raise Careful from None
    finally:
        parser.dispose()


def _build(next_event: Any, max_depth: int) -> tuple[bool, Any]:
    if type(next_event()) is not StreamStartEvent:
        raise Careful
    first = next_event()
    if type(first) is StreamEndEvent:
        return _EMPTY_DOCUMENT
    if type(first) is not DocumentStartEvent:
        raise Careful
    scalars = _Scalars()
    known = scalars.known
    anchors: set[str] = set()
    # open collections, innermost last; for a mapping, the key read and waiting for its value
    stack: list[list[Any]] = []
    root: Any = _NO_VALUE
    while root is _NO_VALUE:
        event = next_event()
        kind = type(event)
        if kind is ScalarEvent:
            if event.tag is not None and event.tag != "!":
                raise Careful
            if event.implicit[0]:
                value = known[event.value] if event.value in known else scalars.plain(event.value)
            else:
                value = event.value
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            value = stack.pop()[0]
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            if (event.tag is not None and event.tag != "!") or len(stack) >= max_depth:
                raise Careful
            if event.anchor is not None:
                if event.anchor in anchors:
                    raise Careful
                anchors.add(event.anchor)
            stack.append([{} if kind is MappingStartEvent else [], _NO_VALUE])
            continue
        else:  # an alias, or an event out of place
            raise Careful
        if kind is ScalarEvent and event.anchor is not None:
            if event.anchor in anchors:
                raise Careful
            anchors.add(event.anchor)
        if not stack:
            root = value
            continue
        top = stack[-1]
        container = top[0]
        if type(container) is list:
            container.append(value)
        elif top[1] is _NO_VALUE:
            if kind is not ScalarEvent or value in container:
                raise Careful  # a key that is a collection, or appears twice
            top[1] = value
        else:
            container[top[1]] = value
            top[1] = _NO_VALUE
    if type(next_event()) is not DocumentEndEvent or type(next_event()) is not StreamEndEvent:
        raise Careful  # another document follows
    return True, root
