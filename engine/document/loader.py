"""The hardened YAML/JSON loader of orchestration documents.

A document loads from a file, a string (YAML or JSON) or a mapping, within limits on its size,
nesting depth, YAML alias expansion and task count. Loading keeps the line and column of every
value so that problems can be reported where they are; the ``orchestration:`` wrapper is
optional.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from multi_task_orchestrator.engine.issues import DocumentError, Issue, Location

# --- loading with positions ---------------------------------------------------------------


@dataclass(slots=True)
class RawDocument:
    """A loaded but unvalidated document, with the position of every value in the source."""

    data: Any
    positions: dict[Location, tuple[int, int]] = field(default_factory=dict)
    source_name: str = "<document>"

    def position(self, loc: Location) -> tuple[int, int] | None:
        """The (line, column) of the value at ``loc``, or of its nearest enclosing value."""
        for end in range(len(loc), -1, -1):
            found = self.positions.get(tuple(loc[:end]))
            if found:
                return found
        return None

    def issue(self, message: str, loc: Location = (), hint: str | None = None, **kw: Any) -> Issue:
        line, column = self.position(loc) or (None, None)
        return Issue(message, loc, hint, line, column, **kw)


MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
MAX_NESTING_DEPTH = 64
MAX_ALIAS_EXPANSION = 100_000  # values YAML aliases may add beyond those written out
_MAX_VALUES = 5_000_000  # a walk of a mapping given in memory stops here (a 5 MB text has fewer)
_SCALARS = (str, int, float, type(None))  # what a walk of parsed data need not look into


def _too_large(size: int, limit: int, what: str = "the document") -> DocumentError:
    return DocumentError(
        [
            Issue(
                f"{what} is {size:,} bytes, over the limit of {limit:,} bytes",
                hint="split it into smaller orchestrations, or raise "
                "ORCHESTRATOR_MAX_DOCUMENT_BYTES",
            )
        ]
    )


def _too_deep(limit: int, line: int | None = None, column: int | None = None) -> DocumentError:
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


def _check_size(text: str, max_bytes: int) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise _too_large(size, max_bytes)


class _Constructor(yaml.constructor.SafeConstructor):
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


class _Resolver(yaml.resolver.Resolver):
    """YAML 1.2 booleans: only true/false, so ``on:`` and ``no`` stay text."""


class _DepthLimited(yaml.composer.Composer):
    """PyYAML's composer, refusing nesting deeper than ``max_depth`` as it goes, before Python's
    own recursion limit could be reached. Over libyaml's events it is a loop of short calls, so
    a thread composing a large document lets the event loop's thread run in between (libyaml's
    own composer holds the GIL for the whole document: ~0.3 s per megabyte)."""

    max_depth: int = MAX_NESTING_DEPTH
    _depth: int = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        nested = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        if nested:
            self._depth += 1
            if self._depth > self.max_depth:
                mark = self.peek_event().start_mark
                raise _too_deep(self.max_depth, mark.line + 1, mark.column + 1)
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
    _Constructor,
    _Resolver,
):
    """Safe loading in pure Python: JSON values, YAML 1.2 booleans, bounded nesting."""

    def __init__(self, stream: str, max_depth: int = MAX_NESTING_DEPTH) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _DepthLimited.__init__(self)
        _Constructor.__init__(self)
        _Resolver.__init__(self)
        self.max_depth = max_depth


_FAST: bool = yaml.__with_libyaml__
_CParser: type = yaml.cyaml.CParser if _FAST else object


class _FastLoader(_DepthLimited, _Constructor, _Resolver, _CParser):  # type: ignore[misc]
    """The same loading over libyaml's scanner and parser: several times faster than PyYAML's
    on a large document (PyYAML's scanner also slows down with every open bracket)."""

    def __init__(self, stream: str, max_depth: int = MAX_NESTING_DEPTH) -> None:
        _CParser.__init__(self, stream)  # type: ignore[misc]  # a class chosen at import
        _DepthLimited.__init__(self)
        _Constructor.__init__(self)
        _Resolver.__init__(self)
        self.max_depth = max_depth


def _tag_name(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org") else tag


# YAML 1.2's core schema: timestamps stay text, and only true/false are booleans.
_NOT_IMPLICIT = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"}
_Resolver.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _NOT_IMPLICIT]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag in ("timestamp", "binary", "set", "omap", "pairs"):
    _Constructor.add_constructor(f"tag:yaml.org,2002:{_tag}", _Constructor._not_json)
_Resolver.add_implicit_resolver(
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


def _check_aliases(root: yaml.Node, max_depth: int) -> None:
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
            raise _too_deep(max_depth, mark.line + 1, mark.column + 1)
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


def _index_nodes(node: yaml.Node, out: dict[Location, tuple[int, int]]) -> tuple[bool, list[Issue]]:
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


def _check_data(data: Any, max_depth: int) -> None:
    """Refuse parsed data nested deeper than ``max_depth`` (or referring to itself)."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    walked = 0
    while stack:
        value, depth = stack.pop()
        # the concrete types first: isinstance against an ABC such as Mapping is slow
        children: Iterable[Any]
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, (list, tuple)):
            children = value
        elif isinstance(value, Mapping):
            children = value.values()
        else:
            continue
        if depth + 1 > max_depth:
            raise _too_deep(max_depth)
        walked += 1
        if walked > _MAX_VALUES:
            raise DocumentError([Issue(f"the document has more than {_MAX_VALUES:,} values")])
        depth += 1
        stack.extend([(child, depth) for child in children if not isinstance(child, _SCALARS)])


def _compose(text: str, max_depth: int) -> tuple[_Loader | _FastLoader, yaml.Node | None]:
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


def too_many_tasks(
    count: int, limit: int, line: int | None = None, column: int | None = None
) -> Issue:
    """The issue of a document with more tasks than ``ORCHESTRATOR_MAX_TASKS`` allows."""
    return Issue(
        f"the document has {count:,} tasks, more than the limit of {limit:,} "
        "(ORCHESTRATOR_MAX_TASKS)",
        ("tasks",),
        "split it into smaller orchestrations, or raise ORCHESTRATOR_MAX_TASKS",
        line,
        column,
    )


def _check_task_count(tasks: Any, max_tasks: int | None) -> None:
    """Refuse more than ``max_tasks`` tasks (a list of values or a YAML node), before anything
    is built of them: counting is cheap, building and checking each task is not."""
    if max_tasks is None:
        return
    if isinstance(tasks, yaml.SequenceNode):
        if len(tasks.value) > max_tasks:
            mark = tasks.start_mark
            raise DocumentError(
                [too_many_tasks(len(tasks.value), max_tasks, mark.line + 1, mark.column + 1)]
            )
    elif isinstance(tasks, list) and len(tasks) > max_tasks:
        raise DocumentError([too_many_tasks(len(tasks), max_tasks)])


def _tasks_of(data: Any) -> Any:
    """The ``tasks`` of parsed data or of a YAML node, under ``orchestration:`` or not."""
    for _ in range(2):
        if isinstance(data, dict):
            found = data.get("tasks", data.get("orchestration"))
        elif isinstance(data, yaml.MappingNode):
            by_key = {key.value: value for key, value in data.value if key.tag.endswith(":str")}
            found = by_key.get("tasks", by_key.get("orchestration"))
        else:
            return None
        if isinstance(found, list | yaml.SequenceNode):
            return found
        data = found
    return None


def load_text(
    text: str,
    source_name: str = "<document>",
    *,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    max_depth: int = MAX_NESTING_DEPTH,
    max_tasks: int | None = None,
) -> RawDocument:
    """Load YAML or JSON text; raises DocumentError with the position of a syntax error.

    Text over ``max_bytes`` (UTF-8) is refused before it is parsed, as is nesting deeper than
    ``max_depth`` mappings and lists, YAML aliases that would expand without bound, and more
    than ``max_tasks`` tasks (counted before they are built).
    """
    _check_size(text, max_bytes)
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            issue = Issue(f"invalid JSON: {exc.msg}", (), None, exc.lineno, exc.colno)
            raise DocumentError([issue]) from None
        except RecursionError:
            raise _too_deep(max_depth) from None
        _check_data(data, max_depth)
        _check_task_count(_tasks_of(data), max_tasks)
        raw = RawDocument(data, source_name=source_name)
        try:
            json_loader, node = _compose(text, max_depth)
            json_loader.dispose()
        except (yaml.YAMLError, DocumentError, RecursionError, ValueError):
            node = None  # valid JSON that YAML cannot read: positions are lost, nothing else
        if node is not None:
            _index_nodes(node, raw.positions)
        return _unwrap(raw)
    loader: _Loader | _FastLoader | None = None
    try:
        loader, node = _compose(text, max_depth)
        if node is None:
            raise DocumentError([Issue("the document is empty", hint="start with 'tasks:'")])
        _check_task_count(_tasks_of(node), max_tasks)
        raw = RawDocument(None, source_name=source_name)
        may_alias, duplicates = _index_nodes(node, raw.positions)
        if may_alias:
            _check_aliases(node, max_depth)
        raw.data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = exc.problem or "cannot be read"
        context = f" {exc.context}" if exc.context else ""
        issue = Issue(f"invalid YAML: {problem}{context}", (), None, line, column)
        raise DocumentError([issue]) from None
    except yaml.YAMLError as exc:
        raise DocumentError([Issue(f"invalid YAML: {exc}")]) from None
    except RecursionError:
        raise _too_deep(max_depth) from None
    finally:
        if loader is not None:
            loader.dispose()
    if duplicates:
        raise DocumentError(duplicates)
    return _unwrap(raw)


def load_mapping(
    data: Mapping[str, Any],
    source_name: str = "<document>",
    *,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    max_depth: int = MAX_NESTING_DEPTH,
) -> RawDocument:
    """Wrap an already parsed document (e.g. a JSON object sent over MCP).

    The same limits as for text apply: its JSON form may not exceed ``max_bytes``, nor its
    nesting ``max_depth``.
    """
    _check_data(data, max_depth)
    try:
        text = json.dumps(data, default=str)
    except (ValueError, TypeError, RecursionError) as exc:
        raise DocumentError([Issue(f"the document cannot be read as JSON: {exc}")]) from None
    if len(text) > max_bytes:
        raise _too_large(len(text), max_bytes, "the document (as JSON)")
    return _unwrap(RawDocument(json.loads(text), source_name=source_name))


def load_file(
    path: str | Path,
    *,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    max_depth: int = MAX_NESTING_DEPTH,
    max_tasks: int | None = None,
) -> RawDocument:
    """Load a document from a file; a missing, unreadable or too large file is a DocumentError."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise _too_large(size, max_bytes, str(path))
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DocumentError([Issue(f"no such file: {path}")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DocumentError([Issue(f"cannot read {path}: {exc}")]) from None
    return load_text(text, str(path), max_bytes=max_bytes, max_depth=max_depth, max_tasks=max_tasks)


def load_source(
    source: str | Path | Mapping[str, Any],
    *,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    max_depth: int = MAX_NESTING_DEPTH,
    max_tasks: int | None = None,
) -> RawDocument:
    """Load from a mapping, a Path, or YAML/JSON text, within the size, nesting and task count
    limits (a mapping's tasks are counted by ``validation.validate``)."""
    if isinstance(source, Mapping):
        return load_mapping(source, max_bytes=max_bytes, max_depth=max_depth)
    if isinstance(source, Path):
        return load_file(source, max_bytes=max_bytes, max_depth=max_depth, max_tasks=max_tasks)
    return load_text(source, max_bytes=max_bytes, max_depth=max_depth, max_tasks=max_tasks)


def _unwrap(raw: RawDocument) -> RawDocument:
    data = raw.data
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "nothing"
        raise DocumentError(
            [raw.issue(f"the document must be a mapping, not {kind}", hint="start with 'tasks:'")]
        )
    if set(data) == {"orchestration"} and isinstance(data["orchestration"], dict):
        raw.data = data["orchestration"]
        raw.positions = {
            loc[1:]: pos for loc, pos in raw.positions.items() if loc[:1] == ("orchestration",)
        }
    return raw
