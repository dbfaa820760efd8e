"""JMESPath as the data actions run it: compiled once, failing with a message that names the
expression and the item; and ``fields`` entries compiled into named expressions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jmespath import exceptions as jmespath_errors
from jmespath.parser import ParsedResult

from multi_task_orchestrator.engine.errors import ConfigError
from multi_task_orchestrator.engine.limits import compile_expression, jmespath_problem, search
from multi_task_orchestrator.engine.runners.data.values import describe

JMESPATH_HINT = (
    "JMESPath puts literals in backticks (price > `10`), strings in single quotes ('books') "
    'and odd key names in double quotes ("first-name"); see https://jmespath.org'
)


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled JMESPath expression whose failures name the expression and the item."""

    text: str
    parsed: ParsedResult

    @classmethod
    def compile(cls, text: str, field: str) -> Expression:
        try:
            return cls(text, compile_expression(text))
        except jmespath_errors.JMESPathError as exc:
            raise ConfigError(
                f"invalid JMESPath in '{field}': {jmespath_problem(exc)} in '{text}' "
                f"({JMESPATH_HINT})"
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
                f"JMESPath '{self.text}' failed on {where} ({describe(value)}): {exc}"
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


def compile_fields(fields: list[str] | dict[str, str]) -> list[tuple[str, Expression]]:
    pairs = fields.items() if isinstance(fields, dict) else ((_output_key(t), t) for t in fields)
    return [(name, Expression.compile(text, "fields")) for name, text in pairs]


def build_object(item: Any, fields: list[tuple[str, Expression]], where: str) -> dict[str, Any]:
    return {name: expression(item, where) for name, expression in fields}
