"""The actions that combine several inputs: ``merge`` (lists concatenated, objects merged key
by key, see ``object_merge``) and ``join`` (two lists of objects matched on a key)."""

from __future__ import annotations

from typing import Any

from multi_task_orchestrator.engine.errors import ConfigError
from multi_task_orchestrator.engine.runners.data.config import DataConfig
from multi_task_orchestrator.engine.runners.data.expression import Expression
from multi_task_orchestrator.engine.runners.data.inputs import ActionFunction, DataInput
from multi_task_orchestrator.engine.runners.data.object_merge import ObjectMerge, dotted
from multi_task_orchestrator.engine.runners.data.values import canonical, describe, kind


def _merge(config: DataConfig, data: DataInput) -> tuple[Any, str]:
    present = [(index, value) for index, value in enumerate(data.values) if value is not None]
    for index, value in present:
        if not isinstance(value, list | dict):
            raise ConfigError(
                f"merge takes lists or objects, but {data.label(index)} is {describe(value)}"
            )
    if not present:
        return [], f"merged {len(data.values)} input(s): all null, result is an empty list"
    first_index, first = present[0]
    for index, value in present[1:]:
        if isinstance(value, list) != isinstance(first, list):
            raise ConfigError(
                f"merge cannot mix lists and objects: {data.label(index)} is "
                f"{kind(value)} but {data.label(first_index)} is {kind(first)}"
            )
    if isinstance(first, list):
        merged_list = [item for _, value in present for item in value]
        return merged_list, f"merged {len(present)} input(s) into {len(merged_list)} items"
    objects = ObjectMerge(config.on_conflict)
    merged = objects.merge([(data.label(index), value) for index, value in present])
    line = f"merged {len(present)} input(s) into an object with {len(merged)} keys"
    if objects.conflicts:
        keys = ", ".join(dotted(path) for path in objects.conflicts)
        kept = {
            "collect": "kept every value in a list",
            "first": "kept the first input's value",
            "last": "kept the last input's value",
        }[config.on_conflict]
        line += f"; {len(objects.conflicts)} key(s) differed ({keys}): {kept} (on_conflict)"
    return merged, line


def _objects(values: Any, side: str) -> list[dict[str, Any]]:
    if not isinstance(values, list):
        raise ConfigError(f"join needs a list of objects on the {side}, got {describe(values)}")
    for index, item in enumerate(values):
        if not isinstance(item, dict):
            raise ConfigError(f"join: {side} item {index} is {describe(item)}, not an object")
    return values


def _join(config: DataConfig, data: DataInput) -> tuple[Any, str]:
    left_values, right_values = data.values
    left = _objects(left_values, "left (inputs[0])")
    right = _objects(right_values, "right (inputs[1])")
    left_key = Expression.compile(
        config.left_on or config.on or "", "left_on" if config.left_on else "on"
    )
    right_key = Expression.compile(
        config.right_on or config.on or "", "right_on" if config.right_on else "on"
    )
    by_key: dict[str, list[dict[str, Any]]] = {}
    for index, item in enumerate(right):
        key = right_key(item, f"right item {index}")
        if key is not None:
            by_key.setdefault(canonical(key), []).append(item)
    kept_field = left_key.field_name
    rows: list[dict[str, Any]] = []
    for index, item in enumerate(left):
        key = left_key(item, f"left item {index}")
        matches = by_key.get(canonical(key), []) if key is not None else []
        for match in matches:
            row = {**item, **match}
            if kept_field is not None and kept_field in item:
                row[kept_field] = item[kept_field]
            rows.append(row)
        if not matches and config.how == "left":
            rows.append(dict(item))
    line = f"joined {len(left)} left and {len(right)} right items into {len(rows)} rows"
    return rows, f"{line} ({config.how})"


ACTIONS: dict[str, ActionFunction] = {"merge": _merge, "join": _join}
