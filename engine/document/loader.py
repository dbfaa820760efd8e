"""The hardened YAML/JSON loader of orchestration documents.

A document loads from a file, a string (YAML or JSON) or a mapping, within limits on its size,
nesting depth, YAML alias expansion and task count; the ``orchestration:`` wrapper is optional.
The line and column of every value, to report a problem where it is, are found when a problem
is reported (``raw.RawDocument``). YAML is read straight from libyaml's events
(``yaml_events``), or, when the text needs more care (aliases, tags, errors to report), by
``hardened_yaml``; JSON by orjson.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from multi_task_orchestrator.engine.document.raw import RawDocument
from multi_task_orchestrator.engine.issues import DocumentError, Issue

if TYPE_CHECKING:  # PyYAML and the YAML readers load with the first document (~7 ms)
    from multi_task_orchestrator.engine.document.hardened_yaml import YamlLoader

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
MAX_NESTING_DEPTH = 64
_MAX_VALUES = 5_000_000  # a walk of a mapping given in memory stops here (a 5 MB text has fewer)
_SCALARS = (str, int, float, type(None))  # what a walk of parsed data need not look into


def _too_large(size: int | None, limit: int, what: str = "the document") -> DocumentError:
    """``size`` None: more than ``limit``, by how much is not known (a stream)."""
    size_is = f"{size:,} bytes, over" if size is not None else "over"
    return DocumentError(
        [
            Issue(
                f"{what} is {size_is} the limit of {limit:,} bytes",
                hint="split it into smaller orchestrations, or raise "
                "ORCHESTRATOR_MAX_DOCUMENT_BYTES",
            )
        ]
    )


def too_deep(max_depth: int) -> DocumentError:
    """``hardened_yaml.too_deep``: the error of a document nested deeper than the limit."""
    from multi_task_orchestrator.engine.document import hardened_yaml

    return hardened_yaml.too_deep(max_depth)


def _check_size(text: str, max_bytes: int) -> None:
    # ASCII text (the usual) has as many bytes as characters, and str knows if it is ASCII
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise _too_large(size, max_bytes)


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
            raise too_deep(max_depth)
        walked += 1
        if walked > _MAX_VALUES:
            raise DocumentError([Issue(f"the document has more than {_MAX_VALUES:,} values")])
        depth += 1
        stack.extend([(child, depth) for child in children if not isinstance(child, _SCALARS)])


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
    import yaml

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
    import yaml

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
    if text.lstrip()[:1] in ("{", "["):
        data = _json(text, max_depth)
        _check_task_count(_tasks_of(data), max_tasks)
        return _unwrap(RawDocument(data, None, source_name, text=text, max_depth=max_depth))
    raw = _load_yaml(text, source_name, max_depth, max_tasks)
    if not text.isascii() or "\\u" in text or "\\U" in text:  # how a lone surrogate comes in
        _check_surrogates(raw.data)
    return raw


def _load_yaml(text: str, source_name: str, max_depth: int, max_tasks: int | None) -> RawDocument:
    from multi_task_orchestrator.engine.document import yaml_events

    try:
        found, data = yaml_events.read(text, max_depth)
    except yaml_events.Careful:
        return _load_yaml_carefully(text, source_name, max_depth, max_tasks)
    if not found:
        raise DocumentError([Issue("the document is empty", hint="start with 'tasks:'")])
    tasks = _tasks_of(data)
    if max_tasks is not None and isinstance(tasks, list) and len(tasks) > max_tasks:
        # the careful path says where the tasks are
        return _load_yaml_carefully(text, source_name, max_depth, max_tasks)
    return _unwrap(RawDocument(data, None, source_name, text=text, max_depth=max_depth))


def _json(text: str, max_depth: int) -> Any:
    """The value of JSON text within the nesting limit. orjson reads it; what orjson refuses
    is read again by the standard library, which reads a little more (NaN, integers past 64
    bits, lone surrogates) and whose messages say where the error is."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            issue = Issue(f"invalid JSON: {exc.msg}", (), None, exc.lineno, exc.colno)
            raise DocumentError([issue]) from None
        except RecursionError:
            raise too_deep(max_depth) from None
        _check_surrogates(data)  # orjson refuses a lone surrogate; the standard library not
    keys = _check_json_nesting(data, max_depth)
    # Every key is followed by a colon, which a text holds outside its strings only there: as
    # many colons as keys parsed means no key was given twice in one object (the parsers keep
    # the last). Colons inside strings (URLs) make more; then, with no key spaced from its
    # colon, '":' comes once per key, more only for strings holding '":'. Only when neither
    # count settles it is the text read again, key by key.
    if text.count(":") != keys and (text.count('":') != keys or _SPACED_COLON.search(text)):
        _check_duplicate_keys(text)
    return data


_SPACED_COLON = re.compile(r'"\s+:')


def _check_json_nesting(data: Any, max_depth: int) -> int:
    """Refuse JSON values nested deeper than ``max_depth``: a walk one level at a time, each
    level a few comprehensions (a value per step of a loop would take longer than reading the
    JSON). Only for what a JSON parser returns: dicts and lists, none of them shared. Returns
    how many keys its objects hold."""
    level = [data] if type(data) is dict or type(data) is list else []
    keys = 0
    for _ in range(max_depth):
        if not level:
            return keys
        objects = [v for v in level if type(v) is dict]
        keys += sum(map(len, objects))
        values = chain.from_iterable(map(dict.values, objects))
        items = chain.from_iterable([v for v in level if type(v) is list])
        level = [v for v in values if type(v) is dict or type(v) is list]
        level += [v for v in items if type(v) is dict or type(v) is list]
    if level:
        raise too_deep(max_depth)
    return keys


def _check_duplicate_keys(text: str) -> None:
    """Refuse JSON text in which an object holds a key twice, as YAML's loader does."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                problem = f"the key {key[:60]!r} appears twice in one JSON object"
                hint = "remove one of them; only the last would count"
                raise DocumentError([Issue(problem, hint=hint)])
            seen.add(key)
        return dict(pairs)

    json.loads(text, object_pairs_hook=unique)


def _load_yaml_carefully(
    text: str, source_name: str, max_depth: int, max_tasks: int | None
) -> RawDocument:
    """YAML read through a node tree: aliases measured, errors and positions reported."""
    import yaml

    from multi_task_orchestrator.engine.document.hardened_yaml import (
        check_aliases,
        compose,
        index_positions,
    )

    loader: YamlLoader | None = None
    try:
        loader, node = compose(text, max_depth)
        if node is None:
            raise DocumentError([Issue("the document is empty", hint="start with 'tasks:'")])
        _check_task_count(_tasks_of(node), max_tasks)
        raw = RawDocument(None, {}, source_name)
        may_alias, duplicates = index_positions(node, raw.positions)
        if may_alias:
            check_aliases(node, max_depth)
        raw.data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = exc.problem or "cannot be read"
        context = f" {exc.context}" if exc.context else ""
        issue = Issue(f"invalid YAML: {problem}{context}", (), None, line, column)
        if problem == "but found another document":  # a second '---' with more after it
            issue = Issue(
                "the text holds more than one YAML document; an orchestration is one",
                (),
                "remove this '---' and what follows it, or put each document in its own file",
                line,
                column,
            )
        raise DocumentError([issue]) from None
    except yaml.YAMLError as exc:
        raise DocumentError([Issue(f"invalid YAML: {exc}")]) from None
    except RecursionError:
        raise too_deep(max_depth) from None
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
    text = _limited_json(data, max_bytes, max_depth, "the document", "the document (as JSON)")
    return _unwrap(RawDocument(json.loads(text), source_name=source_name))


def check_vars(values: Mapping[str, Any], *, max_bytes: int, max_depth: int) -> None:
    """The vars given beside a document (``--var``, a tool's ``vars``) are held to the
    document's limits: their JSON form within ``max_bytes``, their nesting within ``max_depth``."""
    _limited_json(values, max_bytes, max_depth, "the vars", "the vars' JSON")


def _limited_json(data: Any, max_bytes: int, max_depth: int, what: str, sized: str) -> str:
    """``data`` as JSON text, refused (naming ``what``, or ``sized`` when too large) when it is
    nested deeper than ``max_depth``, longer than ``max_bytes``, or holds a lone surrogate."""
    _check_data(data, max_depth)
    try:
        text = json.dumps(data, default=str)
    except (ValueError, TypeError, RecursionError) as exc:
        raise DocumentError([Issue(f"{what} cannot be read as JSON: {exc}")]) from None
    if len(text) > max_bytes:
        raise _too_large(len(text), max_bytes, sized)
    if "\\ud" in text:
        _check_surrogates(data)
    return text


def _check_surrogates(data: Any) -> None:
    """Refuse a string (or key) holding half of a UTF-16 surrogate pair: JSON's and YAML's
    ``\\ud800`` make one, and no UTF-8 text (the state database, an answer) can hold it."""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                half = f"U+{ord(value[exc.start]):04X}"
                raise DocumentError(
                    [
                        Issue(
                            f"the document holds half of a UTF-16 surrogate pair ({half}) in "
                            f"'{value[max(0, exc.start - 40) : exc.start]}...': that is not "
                            "Unicode text",
                            hint="write the whole character, or remove the escape",
                        )
                    ]
                ) from None


def load_file(
    path: str | Path,
    *,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    max_depth: int = MAX_NESTING_DEPTH,
    max_tasks: int | None = None,
) -> RawDocument:
    """Load a document from a file; a missing, unreadable or too large file is a DocumentError."""
    text = read_document(path, max_bytes=max_bytes)
    return load_text(text, str(path), max_bytes=max_bytes, max_depth=max_depth, max_tasks=max_tasks)


def read_document(path: str | Path, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> str:
    """The text of a document file, read no further than ``max_bytes``: a file that does not
    say its size (``/dev/zero``, a pipe) is refused once it passes the limit, not read to the
    end. A missing, unreadable, too large or non-UTF-8 file is a DocumentError."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise _too_large(size, max_bytes, str(path))
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise _too_large(None, max_bytes, str(path))
        return data.decode("utf-8")
    except FileNotFoundError:
        raise DocumentError([Issue(f"no such file: {path}")]) from None
    except UnicodeDecodeError as exc:
        byte = f"byte {exc.start + 1} (0x{exc.object[exc.start]:02x})"
        message = f"cannot read {path}: {byte} is not UTF-8 text"
        raise DocumentError([Issue(message, hint="save the document as UTF-8")]) from None
    except OSError as exc:
        raise DocumentError([Issue(f"cannot read {path}: {exc}")]) from None


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
    if "orchestration" not in data:
        return raw
    inner = data["orchestration"]
    if not isinstance(inner, dict):
        kind = type(inner).__name__ if inner is not None else "nothing"
        message = f"it must hold the document's fields (name, tasks, ...), not {kind}"
        hint = "e.g. orchestration: {name: Sync, tasks: [...]}, or leave the wrapper out"
        raise DocumentError([raw.issue(message, ("orchestration",), hint)])
    outside = [key for key in data if key != "orchestration"]
    if outside:
        hint = "move it into orchestration:, where the other fields are, or leave the wrapper out"
        raise DocumentError(
            [raw.issue(f"'{key}' is outside orchestration:", (key,), hint) for key in outside]
        )
    raw.descend("orchestration")
    return raw
