"""The ``data_processing`` config model: which action, the data, and each action's options,
checked when the document is validated — JMESPath syntax, aggregate operations, and which
options fit the action — with every problem reported at its own location."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from jmespath import exceptions as jmespath_errors
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from multi_task_orchestrator.engine.issues import did_you_mean
from multi_task_orchestrator.engine.limits import compile_expression, jmespath_problem
from multi_task_orchestrator.engine.runners.base import RunnerConfig
from multi_task_orchestrator.engine.runners.data.expression import JMESPATH_HINT
from multi_task_orchestrator.engine.runners.data.object_merge import OnConflict

Action = Literal[
    "merge",
    "filter",
    "map",
    "select",
    "dedupe",
    "sort",
    "group_by",
    "join",
    "aggregate",
    "flatten",
    "pick",
]
AGGREGATE_OPS = ("count", "sum", "avg", "min", "max")

# The option fields each action reads; giving any other is an error, so a misplaced key shows.
_OPTIONS_USED: dict[str, frozenset[str]] = {
    "merge": frozenset({"on_conflict"}),
    "filter": frozenset({"where"}),
    "map": frozenset({"expression", "fields"}),
    "select": frozenset({"fields"}),
    "dedupe": frozenset({"key"}),
    "sort": frozenset({"key", "order"}),
    "group_by": frozenset({"key"}),
    "join": frozenset({"on", "left_on", "right_on", "how"}),
    "aggregate": frozenset({"ops", "group_by"}),
    "flatten": frozenset({"depth"}),
    "pick": frozenset({"fields", "path"}),
}
_REQUIRED: dict[str, str] = {
    "filter": "where",
    "select": "fields",
    "group_by": "key",
    "aggregate": "ops",
}
_EXPRESSION_FIELDS = (
    "where",
    "expression",
    "key",
    "on",
    "left_on",
    "right_on",
    "path",
    "fields",
    "group_by",
)


Problem = tuple[tuple[str | int, ...], PydanticCustomError, Any]


def _raise_problems(title: str, problems: list[Problem]) -> None:
    """Report every problem at once, each at its own location (relative to the validated value).

    Precise locations matter beyond neatness: the document validator maps them to YAML lines and
    ignores errors at values that still hold ``${...}`` references.
    """
    if problems:
        raise ValidationError.from_exception_data(
            title,
            [InitErrorDetails(type=error, loc=loc, input=value) for loc, error, value in problems],
        )


def _problem(loc: tuple[str | int, ...], message: str, value: Any = None, **ctx: Any) -> Problem:
    return loc, PydanticCustomError("data_config", "{detail}", {"detail": message, **ctx}), value


def _syntax_problem(field: str, text: str, loc: tuple[str | int, ...]) -> Problem | None:
    """The problem with a JMESPath text, if any; text with ``${`` is checked once resolved."""
    if "${" in text:
        return None
    try:
        compile_expression(text)
    except jmespath_errors.JMESPathError as exc:
        error = PydanticCustomError(
            "jmespath",
            "invalid JMESPath in '{field}': {problem} in '{expression}'",
            {
                "field": field,
                "problem": jmespath_problem(exc),
                "expression": text,
                "hint": JMESPATH_HINT,
            },
        )
        return loc, error, text
    return None


def _located_texts(
    value: str | list[str] | dict[str, str],
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Each expression text in a field, with its location inside the field."""
    if isinstance(value, str):
        yield (), value
    elif isinstance(value, dict):
        yield from (((key,), text) for key, text in value.items())
    else:
        yield from (((index,), text) for index, text in enumerate(value))


def parse_op(spec: str) -> tuple[str, str | None]:
    """``"sum:price"`` -> ``("sum", "price")``; ``"count"`` -> ``("count", None)``."""
    op, _, field = spec.partition(":")
    return op.strip(), (field.strip() or None)


class DataConfig(RunnerConfig):
    """Config of a ``data_processing`` task; which options apply depends on ``action``."""

    action: Action = Field(description="what to do with the data")
    input: Any = Field(None, description="the data: one value, usually ${task.output}")
    inputs: list[Any] | None = Field(
        None, description="several values, e.g. [${a.output}, ${b.output}]"
    )
    where: str | None = Field(None, description="filter: JMESPath predicate per item")
    expression: str | None = Field(None, description="map: JMESPath giving each new item")
    fields: list[str] | dict[str, str] | None = Field(
        None,
        description="select/map/pick: JMESPath expressions (their text is the key) "
        "or a mapping {key: JMESPath}",
    )
    key: str | None = Field(None, description="dedupe/sort/group_by: JMESPath key per item")
    order: Literal["asc", "desc"] = Field("asc", description="sort: direction")
    on: str | None = Field(None, description="join: field or JMESPath matched on both sides")
    left_on: str | None = Field(None, description="join: key of the left items")
    right_on: str | None = Field(None, description="join: key of the right items")
    how: Literal["inner", "left"] = Field("inner", description="join: keep unmatched left rows")
    ops: dict[str, str] | None = Field(
        None, description='aggregate: {name: "count" | "sum:field" | "avg:field" | ...}'
    )
    group_by: str | list[str] | None = Field(
        None, description="aggregate: JMESPath key(s) to group by"
    )
    depth: int = Field(1, ge=1, le=100, description="flatten: levels of nesting to remove")
    path: str | None = Field(None, description="pick: JMESPath over the whole input")
    on_conflict: OnConflict = Field(
        "collect",
        description="merge: a key whose inputs hold different values keeps them all in a list "
        "(collect), fails the task (error), or keeps the first or last input's value",
    )

    @field_validator(*_EXPRESSION_FIELDS)
    @classmethod
    def _valid_jmespath(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            field = info.field_name or "expression"
            found = (_syntax_problem(field, text, loc) for loc, text in _located_texts(value))
            _raise_problems(cls.__name__, [problem for problem in found if problem])
        return value

    @field_validator("ops")
    @classmethod
    def _valid_ops(cls, ops: dict[str, str] | None) -> dict[str, str] | None:
        problems: list[Problem | None] = []
        for name, spec in (ops or {}).items():
            op, field = parse_op(spec)
            if op not in AGGREGATE_OPS:
                hint = did_you_mean(op, AGGREGATE_OPS) or f"use one of {', '.join(AGGREGATE_OPS)}"
                problems.append(
                    _problem((name,), f"ops.{name}: unknown operation '{op}'", spec, hint=hint)
                )
            elif field is None and op != "count":
                message = f"ops.{name}: '{op}' needs a field, e.g. '{op}:price'"
                problems.append(_problem((name,), message, spec, hint="write it as op:field"))
            elif field is not None:
                problems.append(_syntax_problem(f"ops.{name}", field, (name,)))
        _raise_problems(cls.__name__, [problem for problem in problems if problem])
        return ops

    @model_validator(mode="after")
    def _fits_action(self) -> DataConfig:
        _raise_problems(type(self).__name__, self._action_problems())
        return self

    def _action_problems(self) -> list[Problem]:
        """Each option that does not fit ``action``, and each one it lacks.

        Problems about how fields combine point at ``action``: the document validator ignores
        errors at values holding ``${...}`` references, and ``input``/``inputs`` nearly always do.
        """
        action = self.action
        given = self.model_fields_set
        used = _OPTIONS_USED[action]
        uses = ", ".join(sorted(used)) or "no options"
        problems = [
            _problem((name,), f"action '{action}' does not use '{name}'; it uses: {uses}")
            for name in (*_EXPRESSION_FIELDS, "order", "how", "ops", "depth", "on_conflict")
            if name in given and name not in used
        ]
        if "input" in given and "inputs" in given:
            message = "give either 'input' (one value) or 'inputs' (several), not both"
            problems.append(_problem(("action",), message))
        elif "input" not in given and "inputs" not in given:
            message = (
                f"action '{action}' needs 'input' (one value, e.g. '${{task.output}}') "
                "or 'inputs' (several values)"
            )
            problems.append(_problem(("input",), message))
        required = _REQUIRED.get(action)
        if required and getattr(self, required) is None:
            problems.append(_problem((required,), f"action '{action}' needs '{required}'"))
        elif required in ("fields", "ops") and not getattr(self, required):
            message = f"action '{action}' needs at least one entry in '{required}'"
            problems.append(_problem((required,), message))
        if action in ("map", "pick"):
            first, second = ("expression", "fields") if action == "map" else ("fields", "path")
            if getattr(self, first) is None and getattr(self, second) is None:
                message = f"action '{action}' needs '{first}' or '{second}'"
                problems.append(_problem((first,), message))
            elif getattr(self, first) is not None and getattr(self, second) is not None:
                message = f"action '{action}' takes '{first}' or '{second}', not both"
                problems.append(_problem((second,), message))
        if action == "join":
            problems += self._join_problems()
        for name in self.group_keys if action == "aggregate" else ():
            if name in (self.ops or {}):
                message = f"'{name}' names both a group key and an operation; rename the operation"
                problems.append(_problem(("ops", name), message))
        return problems

    def _join_problems(self) -> list[Problem]:
        problems = []
        if self.inputs is None or len(self.inputs) != 2:
            got = "'input'" if self.inputs is None else f"{len(self.inputs)} inputs"
            message = f"action 'join' needs 'inputs: [left, right]' (exactly two), got {got}"
            problems.append(_problem(("action",), message))
        if self.on is not None and (self.left_on is not None or self.right_on is not None):
            message = "action 'join' takes 'on', or 'left_on' and 'right_on', not both"
            problems.append(_problem(("on",), message))
        elif self.on is None and (self.left_on is None or self.right_on is None):
            message = "action 'join' needs 'on' (or both 'left_on' and 'right_on')"
            problems.append(_problem(("on",), message))
        return problems

    @property
    def group_keys(self) -> list[str]:
        if self.group_by is None:
            return []
        return [self.group_by] if isinstance(self.group_by, str) else list(self.group_by)
