"""The ``aggregate`` action: ``count``, ``sum``, ``avg``, ``min`` and ``max`` over the items, or
over each group of them (``group_by``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from multi_task_orchestrator.engine.errors import ConfigError
from multi_task_orchestrator.engine.runners.data.config import DataConfig, parse_op
from multi_task_orchestrator.engine.runners.data.expression import Expression
from multi_task_orchestrator.engine.runners.data.inputs import ActionFunction, DataInput
from multi_task_orchestrator.engine.runners.data.values import canonical, check_orderable, describe


@dataclass(frozen=True, slots=True)
class _Op:
    name: str
    spec: str
    op: str
    field: Expression | None

    def apply(self, items: list[Any]) -> Any:
        if self.field is None:
            return len(items)
        values = [self.field(item, f"item {index}") for index, item in enumerate(items)]
        present = [value for value in values if value is not None]
        if self.op == "count":
            return len(present)
        if self.op in ("min", "max"):
            if not present:
                return None
            check_orderable(
                (
                    (f"item {index}", value)
                    for index, value in enumerate(values)
                    if value is not None
                ),
                f"aggregate '{self.name}' ({self.spec})",
                "make them one kind, e.g. to_number(price)",
            )
            return min(present) if self.op == "min" else max(present)
        for value in present:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(
                    f"aggregate '{self.name}' ({self.spec}) needs numbers, "
                    f"but one value is {describe(value)}"
                )
        if self.op == "sum":
            return sum(present)
        return sum(present) / len(present) if present else None


def _aggregate(config: DataConfig, data: DataInput) -> tuple[Any, str]:
    items = data.as_list()
    ops = []
    for name, spec in (config.ops or {}).items():
        op, field = parse_op(spec)
        expression = Expression.compile(field, f"ops.{name}") if field else None
        ops.append(_Op(name, spec, op, expression))

    def results(members: list[Any]) -> dict[str, Any]:
        return {op.name: op.apply(members) for op in ops}

    if config.group_by is None:
        return results(items), f"aggregated {len(items)} items"
    keys = [(text, Expression.compile(text, "group_by")) for text in config.group_keys]
    groups: dict[str, tuple[dict[str, Any], list[Any]]] = {}
    for index, item in enumerate(items):
        group = {text: key(item, f"item {index}") for text, key in keys}
        groups.setdefault(canonical(list(group.values())), (group, []))[1].append(item)
    rows = [{**group, **results(members)} for group, members in groups.values()]
    return rows, f"aggregated {len(items)} items into {len(rows)} groups"


ACTIONS: dict[str, ActionFunction] = {"aggregate": _aggregate}
