"""The actions that reshape one list (``inputs`` concatenated): ``filter``, ``map``,
``select``, ``dedupe``, ``sort``, ``group_by`` and ``flatten`` — and ``pick``, which also takes
one object."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from multi_task_orchestrator.engine.errors import ConfigError
from multi_task_orchestrator.engine.runners.data.config import DataConfig
from multi_task_orchestrator.engine.runners.data.expression import (
    Expression,
    build_object,
    compile_fields,
)
from multi_task_orchestrator.engine.runners.data.inputs import ActionFunction, DataInput
from multi_task_orchestrator.engine.runners.data.values import (
    canonical,
    check_orderable,
    describe,
    group_label,
    is_true,
    kind,
)


def _filter(config: DataConfig, data: DataInput) -> tuple[Any, str]:
    items = data.as_list()
    where = Expression.compile(config.where or "", "where")
    kept = [item for index, item in enumerate(items) if is_true(where(item, f"item {index}"))]
    return kept, f"filter kept {len(kept)} of {len(items)} items"


def _map(config: DataConfig, data: DataInput) -> tuple[Any, str]:
    if config.fields is not None:
        return _select(config, data)
    items = data.as_list()
    expression = Expression.compile(config.expression or "", "expression")
    mapped = [expression(item, f"item {index}") for index, item in enumerate(items)]
    return mapped, f"mapped {len(mapped)} items"


def _select(config: DataConfig, data: DataInput) -> tuple[Any, str]:
    items = data.as_list()
    fields = compile_fields(config.fields or [])
    rows = [build_object(item, fields, f"item {index}") for index, item in enumerate(items)]
    return rows, f"selected {len(fields)} field(s) from {len(rows)} items"


def _keys(config: DataConfig, items: list[Any]) -> Iterator[Any]:
    """Each item's ``key`` value, or the item itself when there is no key."""
    if config.key is None:
        yield from items
        return
    key = Expression.compile(config.key, "key")
    for index, item in enumerate(items):
        yield key(item, f"item {index}")


def _dedupe(config: DataConfig, data: DataInput) -> tuple[Any, str]:
    items = data.as_list()
    seen: set[str] = set()
    unique = []
    for item, key in zip(items, _keys(config, items), strict=True):
        identity = canonical(key)
        if identity not in seen:
            seen.add(identity)
            unique.append(item)
    return unique, f"dedupe kept {len(unique)} of {len(items)} items"


def _sort(config: DataConfig, data: DataInput) -> tuple[Any, str]:
    items = data.as_list()
    keys = list(_keys(config, items))
    present = [index for index, key in enumerate(keys) if key is not None]
    if items and not present and config.key is not None:
        return items, (
            f"sorted nothing: the key '{config.key}' is null for all {len(items)} items "
            "(is its name right?)"
        )
    check_orderable(
        ((f"item {index}", keys[index]) for index in present),
        "sort",
        "give a key that picks one kind of value, e.g. key: price"
        if config.key is None
        else f"make them one kind with the key, e.g. key: 'to_number({config.key})'",
    )
    present.sort(key=keys.__getitem__, reverse=config.order == "desc")
    missing = [index for index, key in enumerate(keys) if key is None]
    ordered = [items[index] for index in present + missing]
    return ordered, f"sorted {len(ordered)} items ({config.order})"


def _group_by(config: DataConfig, data: DataInput) -> tuple[Any, str]:
    items = data.as_list()
    groups: dict[str, list[Any]] = {}
    for item, key in zip(items, _keys(config, items), strict=True):
        groups.setdefault(group_label(key), []).append(item)
    return groups, f"grouped {len(items)} items into {len(groups)} groups"


def _flatten_into(out: list[Any], items: Iterable[Any], depth: int) -> None:
    for item in items:
        if isinstance(item, list) and depth > 0:
            _flatten_into(out, item, depth - 1)
        else:
            out.append(item)


def _flatten(config: DataConfig, data: DataInput) -> tuple[Any, str]:
    items = data.as_list()
    flat: list[Any] = []
    _flatten_into(flat, items, config.depth)
    return flat, f"flattened {len(items)} items into {len(flat)}"


def _pick(config: DataConfig, data: DataInput) -> tuple[Any, str]:
    source = data.as_list() if data.several else data.values[0]
    if config.path is not None:
        value = Expression.compile(config.path, "path")(source, "the input")
        return value, f"picked '{config.path}': {kind(value)}"
    fields = compile_fields(config.fields or [])
    if isinstance(source, dict):
        return build_object(source, fields, "the input"), f"picked {len(fields)} field(s)"
    if isinstance(source, list):
        rows = [build_object(item, fields, f"item {index}") for index, item in enumerate(source)]
        return rows, f"picked {len(fields)} field(s) from {len(rows)} items"
    raise ConfigError(
        f"pick with 'fields' needs an object or a list, but 'input' is {describe(source)}"
    )


ACTIONS: dict[str, ActionFunction] = {
    "filter": _filter,
    "map": _map,
    "select": _select,
    "dedupe": _dedupe,
    "sort": _sort,
    "group_by": _group_by,
    "flatten": _flatten,
    "pick": _pick,
}
