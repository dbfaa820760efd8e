"""The ``data_processing`` task type: reshape task outputs without writing code.

One config chooses an ``action`` and gives the data through ``input`` (one value) or ``inputs``
(several values). Predicates, keys and fields are JMESPath expressions (https://jmespath.org),
evaluated per item; their syntax is checked when the document is validated.

Actions:

- ``merge`` — lists are concatenated in order. Objects are merged key by key, and nothing is
  dropped: a key in one input is kept; objects under one key merge the same way; lists under one
  key are concatenated; a value the inputs agree on is kept once. A key whose inputs hold
  different values is a conflict, settled by ``on_conflict``: ``collect`` (the default) keeps
  every value, in input order, in a list; ``error`` fails the task naming the key and the
  inputs; ``first`` or ``last`` keep one input's value, lists included (the log names the keys
  whose other values were dropped). So merging two browser extractions (``{url, title, data,
  artifacts}`` each) gives ``data`` holding both sites' items, and ``url`` and ``title`` both
  pages'. Null inputs are skipped; mixing lists and objects, or any other value, is an error.
- ``filter`` — keeps the items for which ``where`` is true in JMESPath's sense (null, false and
  empty strings, lists and objects are false; every number, 0 included, is true).
- ``map`` — ``expression``: the expression's value for each item; or ``fields``: an object per
  item, exactly as ``select`` builds it.
- ``select`` — ``fields``: an object per item. A list of expressions uses each expression as
  written as its key (``[name, price]`` -> ``{"name": ..., "price": ...}``; a quoted name such as
  ``'"first-name"'`` keys as ``first-name``); a mapping names them (``{title: name}``).
- ``dedupe`` — keeps the first item for each value of ``key`` (the whole item without a key;
  items where the key is null count as one value).
- ``sort`` — by ``key`` (the item itself without one), ``order: asc | desc``. Items whose key is
  null come last in either order; keys of different types sort by type name first.
- ``group_by`` — ``{"<key as text>": [items...]}`` in first-seen order; a string key is used as
  is, any other key as its compact JSON (``1``, ``true``, ``null``).
- ``join`` — ``inputs: [left, right]`` (lists of objects), matched on ``on`` or on
  ``left_on`` / ``right_on``; ``how: inner | left``. A row is the left object updated with the
  right one, except that a plain-field left key keeps the left value. Each matching right item
  gives its own row; null keys never match.
- ``aggregate`` — ``ops: {name: "count" | "count:f" | "sum:f" | "avg:f" | "min:f" | "max:f"}``
  where ``f`` is JMESPath and null values are left out. Without ``group_by``: one object of
  results. With ``group_by`` (an expression or a list of them): one object per group, in
  first-seen order, holding the group's key values (named by the expressions as written) and
  the results. ``avg``, ``min`` and ``max`` of nothing are null; ``sum`` of nothing is 0.
- ``flatten`` — flattens nested lists ``depth`` levels deep (default 1).
- ``pick`` — ``fields`` (as in ``select``) from an object or from each item of a list; or
  ``path``: the value of one JMESPath expression over the whole input.

Every action but ``merge``, ``join`` and ``pick`` needs a list. Given ``inputs`` (several
lists), every action but ``merge`` and ``join`` concatenates them first, skipping nulls.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from jmespath import exceptions as jmespath_errors
from jmespath.parser import ParsedResult
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from multi_task_orchestrator.engine.errors import ConfigError
from multi_task_orchestrator.engine.issues import did_you_mean
from multi_task_orchestrator.engine.limits import compile_expression, jmespath_problem, search
from multi_task_orchestrator.engine.runners._merge import ObjectMerge, OnConflict, dotted
from multi_task_orchestrator.engine.runners.base import RunContext, Runner, RunnerConfig

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
_JMESPATH_HINT = (
    "JMESPath puts literals in backticks (price > `10`), strings in single quotes ('books') "
    'and odd key names in double quotes ("first-name"); see https://jmespath.org'
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
                "hint": _JMESPATH_HINT,
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


def _parse_op(spec: str) -> tuple[str, str | None]:
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
            op, field = _parse_op(spec)
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


# --- describing values in error messages --------------------------------------------------

_short = reprlib.Repr()
_short.maxstring = 40
_short.maxother = 40
_short.maxlist = 4
_short.maxdict = 4
_short.maxlevel = 2


def _kind(value: Any) -> str:
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


def _describe(value: Any) -> str:
    """E.g. ``an object {'a': 1, ...}``: the kind and a short repr, for error messages."""
    kind = _kind(value)
    return kind if value is None else f"{kind} {_short.repr(value)}"


def _canonical(value: Any) -> str:
    """One text per JSON value, so equal values (including lists and objects) match."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


# --- expressions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Expression:
    """A compiled JMESPath expression whose failures name the expression and the item."""

    text: str
    parsed: ParsedResult

    @classmethod
    def compile(cls, text: str, field: str) -> _Expression:
        try:
            return cls(text, compile_expression(text))
        except jmespath_errors.JMESPathError as exc:
            raise ConfigError(
                f"invalid JMESPath in '{field}': {jmespath_problem(exc)} in '{text}' "
                f"({_JMESPATH_HINT})"
            ) from None

    @property
    def field_name(self) -> str | None:
        """The key this expression reads when it is a plain field such as ``id``."""
        node = self.parsed.parsed
        return node["value"] if node["type"] == "field" else None

    def __call__(self, value: Any, where: str) -> Any:
        try:
            return search(self.parsed, value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"JMESPath '{self.text}' failed on {where} ({_describe(value)}): {exc}"
            ) from None


def _output_key(text: str) -> str:
    """The key a ``fields`` entry gets: its text, unquoted when it is one quoted name."""
    if len(text) > 1 and text.startswith('"') and text.endswith('"'):
        try:
            unquoted = json.loads(text)
        except ValueError:
            return text
        if isinstance(unquoted, str):
            return unquoted
    return text


def _compile_fields(fields: list[str] | dict[str, str]) -> list[tuple[str, _Expression]]:
    pairs = fields.items() if isinstance(fields, dict) else ((_output_key(t), t) for t in fields)
    return [(name, _Expression.compile(text, "fields")) for name, text in pairs]


def _build_object(item: Any, fields: list[tuple[str, _Expression]], where: str) -> dict[str, Any]:
    return {name: expression(item, where) for name, expression in fields}


def _is_true(value: Any) -> bool:
    """JMESPath truthiness: null, false and empty strings, lists and objects are false."""
    if value is None or value is False:
        return False
    return not (isinstance(value, str | list | dict) and not value)


def _order_key(value: Any) -> tuple[str, Any]:
    """A sort key that orders mixed types by type name instead of failing."""
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    return (_kind(value).split()[-1], _canonical(value))


def _group_label(value: Any) -> str:
    return value if isinstance(value, str) else _canonical(value)


# --- the actions --------------------------------------------------------------------------


class _Input:
    """The data of one run, as the action needs it: a list, or the values as given."""

    def __init__(self, config: DataConfig) -> None:
        self.action = config.action
        self.several = config.inputs is not None
        self.values: list[Any] = config.inputs if config.inputs is not None else [config.input]

    def label(self, index: int) -> str:
        return f"inputs[{index}]" if self.several else "input"

    def as_list(self) -> list[Any]:
        """One list: the input, or the inputs concatenated; anything else is a config error."""
        if not self.several:
            (value,) = self.values
            if not isinstance(value, list):
                raise ConfigError(
                    f"action '{self.action}' needs a list, but 'input' is {_describe(value)}; "
                    "point it at a list, e.g. '${task.output.items}'"
                )
            return value
        items: list[Any] = []
        for index, value in enumerate(self.values):
            if value is None:
                continue
            if not isinstance(value, list):
                raise ConfigError(
                    f"action '{self.action}' concatenates lists, but inputs[{index}] is "
                    f"{_describe(value)}; point it at a list, e.g. '${{task.output.items}}'"
                )
            items.extend(value)
        return items


def _merge(config: DataConfig, data: _Input) -> tuple[Any, str]:
    present = [(index, value) for index, value in enumerate(data.values) if value is not None]
    for index, value in present:
        if not isinstance(value, list | dict):
            raise ConfigError(
                f"merge takes lists or objects, but {data.label(index)} is {_describe(value)}"
            )
    if not present:
        return [], f"merged {len(data.values)} input(s): all null, result is an empty list"
    first_index, first = present[0]
    for index, value in present[1:]:
        if isinstance(value, list) != isinstance(first, list):
            raise ConfigError(
                f"merge cannot mix lists and objects: {data.label(index)} is "
                f"{_kind(value)} but {data.label(first_index)} is {_kind(first)}"
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


def _filter(config: DataConfig, data: _Input) -> tuple[Any, str]:
    items = data.as_list()
    where = _Expression.compile(config.where or "", "where")
    kept = [item for index, item in enumerate(items) if _is_true(where(item, f"item {index}"))]
    return kept, f"filter kept {len(kept)} of {len(items)} items"


def _map(config: DataConfig, data: _Input) -> tuple[Any, str]:
    if config.fields is not None:
        return _select(config, data)
    items = data.as_list()
    expression = _Expression.compile(config.expression or "", "expression")
    mapped = [expression(item, f"item {index}") for index, item in enumerate(items)]
    return mapped, f"mapped {len(mapped)} items"


def _select(config: DataConfig, data: _Input) -> tuple[Any, str]:
    items = data.as_list()
    fields = _compile_fields(config.fields or [])
    rows = [_build_object(item, fields, f"item {index}") for index, item in enumerate(items)]
    return rows, f"selected {len(fields)} field(s) from {len(rows)} items"


def _keys(config: DataConfig, items: list[Any]) -> Iterator[Any]:
    """Each item's ``key`` value, or the item itself when there is no key."""
    if config.key is None:
        yield from items
        return
    key = _Expression.compile(config.key, "key")
    for index, item in enumerate(items):
        yield key(item, f"item {index}")


def _dedupe(config: DataConfig, data: _Input) -> tuple[Any, str]:
    items = data.as_list()
    seen: set[str] = set()
    unique = []
    for item, key in zip(items, _keys(config, items), strict=True):
        identity = _canonical(key)
        if identity not in seen:
            seen.add(identity)
            unique.append(item)
    return unique, f"dedupe kept {len(unique)} of {len(items)} items"


def _sort(config: DataConfig, data: _Input) -> tuple[Any, str]:
    items = data.as_list()
    keyed = list(zip(_keys(config, items), items, strict=True))
    present = [pair for pair in keyed if pair[0] is not None]
    missing = [item for key, item in keyed if key is None]
    present.sort(key=lambda pair: _order_key(pair[0]), reverse=config.order == "desc")
    ordered = [item for _, item in present] + missing
    return ordered, f"sorted {len(ordered)} items ({config.order})"


def _group_by(config: DataConfig, data: _Input) -> tuple[Any, str]:
    items = data.as_list()
    groups: dict[str, list[Any]] = {}
    for item, key in zip(items, _keys(config, items), strict=True):
        groups.setdefault(_group_label(key), []).append(item)
    return groups, f"grouped {len(items)} items into {len(groups)} groups"


def _objects(values: Any, side: str) -> list[dict[str, Any]]:
    if not isinstance(values, list):
        raise ConfigError(f"join needs a list of objects on the {side}, got {_describe(values)}")
    for index, item in enumerate(values):
        if not isinstance(item, dict):
            raise ConfigError(f"join: {side} item {index} is {_describe(item)}, not an object")
    return values


def _join(config: DataConfig, data: _Input) -> tuple[Any, str]:
    left_values, right_values = data.values
    left = _objects(left_values, "left (inputs[0])")
    right = _objects(right_values, "right (inputs[1])")
    left_key = _Expression.compile(
        config.left_on or config.on or "", "left_on" if config.left_on else "on"
    )
    right_key = _Expression.compile(
        config.right_on or config.on or "", "right_on" if config.right_on else "on"
    )
    by_key: dict[str, list[dict[str, Any]]] = {}
    for index, item in enumerate(right):
        key = right_key(item, f"right item {index}")
        if key is not None:
            by_key.setdefault(_canonical(key), []).append(item)
    kept_field = left_key.field_name
    rows: list[dict[str, Any]] = []
    for index, item in enumerate(left):
        key = left_key(item, f"left item {index}")
        matches = by_key.get(_canonical(key), []) if key is not None else []
        for match in matches:
            row = {**item, **match}
            if kept_field is not None and kept_field in item:
                row[kept_field] = item[kept_field]
            rows.append(row)
        if not matches and config.how == "left":
            rows.append(dict(item))
    line = f"joined {len(left)} left and {len(right)} right items into {len(rows)} rows"
    return rows, f"{line} ({config.how})"


@dataclass(frozen=True, slots=True)
class _Op:
    name: str
    spec: str
    op: str
    field: _Expression | None

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
            pick = min if self.op == "min" else max
            return pick(present, key=_order_key)
        for value in present:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(
                    f"aggregate '{self.name}' ({self.spec}) needs numbers, "
                    f"but one value is {_describe(value)}"
                )
        if self.op == "sum":
            return sum(present)
        return sum(present) / len(present) if present else None


def _aggregate(config: DataConfig, data: _Input) -> tuple[Any, str]:
    items = data.as_list()
    ops = []
    for name, spec in (config.ops or {}).items():
        op, field = _parse_op(spec)
        expression = _Expression.compile(field, f"ops.{name}") if field else None
        ops.append(_Op(name, spec, op, expression))

    def results(members: list[Any]) -> dict[str, Any]:
        return {op.name: op.apply(members) for op in ops}

    if config.group_by is None:
        return results(items), f"aggregated {len(items)} items"
    keys = [(text, _Expression.compile(text, "group_by")) for text in config.group_keys]
    groups: dict[str, tuple[dict[str, Any], list[Any]]] = {}
    for index, item in enumerate(items):
        group = {text: key(item, f"item {index}") for text, key in keys}
        groups.setdefault(_canonical(list(group.values())), (group, []))[1].append(item)
    rows = [{**group, **results(members)} for group, members in groups.values()]
    return rows, f"aggregated {len(items)} items into {len(rows)} groups"


def _flatten_into(out: list[Any], items: Iterable[Any], depth: int) -> None:
    for item in items:
        if isinstance(item, list) and depth > 0:
            _flatten_into(out, item, depth - 1)
        else:
            out.append(item)


def _flatten(config: DataConfig, data: _Input) -> tuple[Any, str]:
    items = data.as_list()
    flat: list[Any] = []
    _flatten_into(flat, items, config.depth)
    return flat, f"flattened {len(items)} items into {len(flat)}"


def _pick(config: DataConfig, data: _Input) -> tuple[Any, str]:
    source = data.as_list() if data.several else data.values[0]
    if config.path is not None:
        value = _Expression.compile(config.path, "path")(source, "the input")
        return value, f"picked '{config.path}': {_kind(value)}"
    fields = _compile_fields(config.fields or [])
    if isinstance(source, dict):
        return _build_object(source, fields, "the input"), f"picked {len(fields)} field(s)"
    if isinstance(source, list):
        rows = [_build_object(item, fields, f"item {index}") for index, item in enumerate(source)]
        return rows, f"picked {len(fields)} field(s) from {len(rows)} items"
    raise ConfigError(
        f"pick with 'fields' needs an object or a list, but 'input' is {_describe(source)}"
    )


_ACTIONS: dict[str, Callable[[DataConfig, _Input], tuple[Any, str]]] = {
    "merge": _merge,
    "filter": _filter,
    "map": _map,
    "select": _select,
    "dedupe": _dedupe,
    "sort": _sort,
    "group_by": _group_by,
    "join": _join,
    "aggregate": _aggregate,
    "flatten": _flatten,
    "pick": _pick,
}


class DataProcessingRunner(Runner[DataConfig]):
    """Runs one data action over already-resolved inputs; see the module docstring."""

    type_name: ClassVar[str] = "data_processing"
    aliases: ClassVar[tuple[str, ...]] = ("data",)
    listing_rank: ClassVar[int] = 30
    config_model: ClassVar[type[DataConfig]] = DataConfig
    summary: ClassVar[str] = (
        "Reshapes task outputs without code: merge, filter, map, select, dedupe, sort, "
        "group_by, join, aggregate, flatten or pick, with JMESPath for predicates and keys."
    )
    example: ClassVar[dict[str, Any]] = {
        "id": "merge_content",
        "type": "data_processing",
        "config": {
            "action": "merge",
            "inputs": ["${extract_site_a.output}", "${extract_site_b.output}"],
        },
        "dependencies": ["extract_site_a", "extract_site_b"],
    }

    async def run(self, config: DataConfig, ctx: RunContext) -> Any:
        result, line = _ACTIONS[config.action](config, _Input(config))
        ctx.log(line)
        return result


RUNNER = DataProcessingRunner
