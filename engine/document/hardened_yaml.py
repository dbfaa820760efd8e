"""YAML read hardened: text to PyYAML's node tree, and where each value sits in it.

Only JSON's kinds of values are built (no tags that make objects, timestamps or sets), booleans
are YAML 1.2's (``on`` and ``no`` stay text), nesting is refused past a depth as it is read,
and aliases are measured before anything is built, so an alias bomb or a value that contains
itself is refused after reading its few lines. libyaml reads when it is there, PyYAML otherwise.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from multi_task_orchestrator.engine.issues import DocumentError, Issue, Location

MAX_ALIAS_EXPANSION = 100_000  # values YAML aliases may add beyond those written out


def too_deep(limit: int, line: int | None = None, column: int | None = None) -> DocumentError:
    return DocumentError(
        [
            Issue(
                f"the document nests mappings and lists more than {limit} levels deep, "
                f"over the nesting limit of {limit}",
                (),
                "flatten it; deep structures belong in a file a task reads",
                line,
                column,
            )
        ]
    )


class JsonConstructor(yaml.constructor.SafeConstructor):
    """Builds JSON values only; a value its tag cannot read is a YAML error with a position."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # PyYAML's scalar constructors trust the tag: `!!int abc` or `!!bool x` would escape as
        # ValueError or KeyError instead of a YAML error with a position
        try:
            return super().construct_object(node, deep)
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError):
            raise yaml.constructor.ConstructorError(
                None, None, f"the value cannot be read as {_tag_name(node.tag)}", node.start_mark
            ) from None

    def _not_json(self, node: yaml.Node) -> Any:
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"the tag {_tag_name(node.tag)} is not supported: a document holds JSON values (text, "
            "numbers, true/false, null, lists and mappings)",
            node.start_mark,
        )


class Yaml12Resolver(yaml.resolver.Resolver):
    """YAML 1.2 booleans: only true/false, so ``on:`` and ``no`` stay text."""


class _DepthLimited(yaml.composer.Composer):
    """PyYAML's composer, refusing nesting deeper than ``max_depth`` as it goes, before Python's
    own recursion limit could be reached. Over libyaml's events it is a loop of short calls, so
    a thread composing a large document lets the event loop's thread run in between (libyaml's
    own composer holds the GIL for the whole document: ~0.3 s per megabyte)."""

    max_depth: int
    _depth: int = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        nested = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        if nested:
            self._depth += 1
            if self._depth > self.max_depth:
                mark = self.peek_event().start_mark
                raise too_deep(self.max_depth, mark.line + 1, mark.column + 1)
        try:
            return super().compose_node(parent, index)
        finally:
            if nested:
                self._depth -= 1


class _Loader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    _DepthLimited,
    JsonConstructor,
    Yaml12Resolver,
):
    """Safe loading in pure Python: JSON values, YAML 1.2 booleans, bounded nesting."""

    def __init__(self, stream: str, max_depth: int) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _DepthLimited.__init__(self)
        JsonConstructor.__init__(self)
        Yaml12Resolver.__init__(self)
        self.max_depth = max_depth


_FAST: bool = yaml.__with_libyaml__
_CParser: type = yaml.cyaml.CParser if _FAST else object


class _FastLoader(_DepthLimited, JsonConstructor, Yaml12Resolver, _CParser):  # type: ignore[misc]
    """The same loading over libyaml's scanner and parser: several times faster than PyYAML's
    on a large document (PyYAML's scanner also slows down with every open bracket)."""

    def __init__(self, stream: str, max_depth: int) -> None:
        _CParser.__init__(self, stream)  # type: ignore[misc]  # a class chosen at import
        _DepthLimited.__init__(self)
        JsonConstructor.__init__(self)
        Yaml12Resolver.__init__(self)
        self.max_depth = max_depth


YamlLoader = _Loader | _FastLoader  # what ``compose`` reads with; dispose of it when done


def _tag_name(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org") else tag


# YAML 1.2's core schema: timestamps stay text, and only true/false are booleans.
_NOT_IMPLICIT = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"}
Yaml12Resolver.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _NOT_IMPLICIT]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag in ("timestamp", "binary", "set", "omap", "pairs"):
    JsonConstructor.add_constructor(f"tag:yaml.org,2002:{_tag}", JsonConstructor._not_json)
Yaml12Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_aliases(root: yaml.Node, max_depth: int) -> None:
    """Refuse what aliases could make of a document before any of it is built.

    An alias makes two places share one node, so the values and the depth a document expands
    to are measured per node, once (a billion-laughs document is refused after reading its few
    lines, not after expanding them); an alias to a value that contains it is refused outright.
    """
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth) once expanded
    entered: set[int] = set()
    unique = 0
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack[-1]
        key = id(node)
        if key in measured:
            stack.pop()
            continue
        children = _children(node)
        if key not in entered:
            entered.add(key)
            unique += 1
            for child in children:
                if id(child) in entered and id(child) not in measured:
                    mark = child.start_mark
                    raise DocumentError(
                        [
                            Issue(
                                "a YAML alias refers to a value that contains it, which would "
                                "repeat forever",
                                (),
                                "replace the alias (*name) with the value written out",
                                mark.line + 1,
                                mark.column + 1,
                            )
                        ]
                    )
                if id(child) not in measured:
                    stack.append(child)
            continue
        stack.pop()
        sizes = [measured[id(child)] for child in children]
        values = 1 + sum(size for size, _ in sizes)
        nested = isinstance(node, yaml.CollectionNode)
        depth = max((depth for _, depth in sizes), default=0) + (1 if nested else 0)
        if depth > max_depth:
            mark = node.start_mark
            raise too_deep(max_depth, mark.line + 1, mark.column + 1)
        if values - unique > MAX_ALIAS_EXPANSION:
            raise DocumentError(
                [
                    Issue(
                        "YAML aliases in the document expand to more than "
                        f"{MAX_ALIAS_EXPANSION:,} values beyond those written out (an alias "
                        "bomb?)",
                        (),
                        "write the repeated values out, or repeat less",
                    )
                ]
            )
        measured[key] = (values, depth)


def index_positions(
    node: yaml.Node, out: dict[Location, tuple[int, int]]
) -> tuple[bool, list[Issue]]:
    """Record where each value sits, in one walk that visits each node once (a shared, aliased
    node where it is written first).

    Returns whether the document may hold an alias (a node reached twice, or a key that is a
    list or a mapping: keys are not walked) and the keys that appear twice in a mapping.
    """
    duplicates: list[Issue] = []
    visited: set[int] = set()
    reached = 1
    stack: list[tuple[yaml.Node, Location]] = [(node, ())]
    while stack:
        current, loc = stack.pop()
        if id(current) in visited:
            continue
        visited.add(id(current))
        mark = current.start_mark
        out.setdefault(loc, (mark.line + 1, mark.column + 1))
        if isinstance(current, yaml.MappingNode):
            reached += len(current.value)
            seen: set[str] = set()
            for key_node, value_node in current.value:
                if isinstance(key_node, yaml.ScalarNode):
                    key = key_node.value
                else:
                    key = str(key_node)
                    reached += 1  # a key that is a collection may be an alias: check them all
                if key in seen:
                    duplicates.append(_duplicate_key(key, key_node, loc))
                seen.add(key)
                stack.append((value_node, (*loc, key)))
        elif isinstance(current, yaml.SequenceNode):
            reached += len(current.value)
            stack.extend((child, (*loc, index)) for index, child in enumerate(current.value))
    return reached != len(visited), duplicates


def _duplicate_key(key: str, key_node: yaml.Node, where: Location) -> Issue:
    line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
    return Issue(
        f"the key '{key}' appears twice",
        where,
        "remove one of them; only the last would count",
        line,
        column,
    )


def compose(text: str, max_depth: int) -> tuple[YamlLoader, yaml.Node | None]:
    """A loader and the node tree of ``text``: read by libyaml when it is there; text it cannot
    read is read again by PyYAML, whose messages and positions syntax errors have always had."""
    if _FAST:
        fast: _FastLoader | None = None
        try:
            fast = _FastLoader(text, max_depth)
            return fast, fast.get_single_node()
        except (yaml.YAMLError, ValueError):  # ValueError: text libyaml cannot encode
            if fast is not None:
                fast.dispose()
    loader = _Loader(text, max_depth)  # reading starts here: it checks the characters
    try:
        return loader, loader.get_single_node()
    except BaseException:
        loader.dispose()
        raise
