"""Bounds on what one ``${...}`` reference may build, and on the work evaluating it may do.

JMESPath's ``[@, @]`` copies nothing: it makes a list that holds the same value twice. Written
forty times in a row, it builds in microseconds a value whose tree has 2^40 leaves, and whatever
walks that value next — serialising, redacting, comparing, ``to_string`` — never finishes, on
the event loop. So:

- at validation, ``growth`` bounds how many times an expression can repeat its input (the sums of
  multi-selects, multiplied along pipes and projections); past ``MAX_GROWTH`` it is refused;
- while evaluating (``bounded_search``), every node visited, item copied by a flatten or slice,
  and value walked by a function that reads its argument deeply (``to_string``, ``contains``,
  ``==``) is counted against ``MAX_REFERENCE_NODES``;
- the result is measured as a tree (as serialising would see it) before it is handed on, with the
  same limit, stopping as soon as it is reached.

Past a limit, ``ReferenceTooLarge`` names the limit; the walks stop there, so a refused reference
costs at most a few tens of milliseconds.
"""

from __future__ import annotations

from typing import Any

from jmespath.functions import Functions
from jmespath.parser import ParsedResult
from jmespath.visitor import Options, TreeInterpreter

MAX_REFERENCE_NODES = 200_000  # values; walking this many takes ~0.1 s
MAX_GROWTH = 10_000

# Functions whose work is a walk of their arguments' whole trees, not just of a list's items.
_DEEP_FUNCTIONS = frozenset({"to_string", "contains"})
# Functions whose result is a single number, boolean or null, however large their arguments.
_SCALAR_FUNCTIONS = frozenset(
    {
        "abs",
        "avg",
        "ceil",
        "contains",
        "ends_with",
        "floor",
        "length",
        "max",
        "min",
        "starts_with",
        "sum",
        "to_number",
        "type",
    }
)


class ReferenceTooLarge(Exception):
    """A reference builds or walks more values than its limit allows; the message says which."""


class _Budget:
    """What an evaluation may still spend, in values visited, copied or walked."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.limit = limit

    def spend(self, units: int) -> None:
        self.left -= units
        if self.left < 0:
            raise ReferenceTooLarge(
                f"evaluating it visits, copies or walks more than {self.limit:,} values, over "
                f"the limit of {self.limit:,} values per reference"
            )

    def walk(self, value: Any) -> None:
        """Spend one unit per value in ``value``'s tree, a shared value once per place."""
        stack = [value]
        while stack:
            current = stack.pop()
            if isinstance(current, dict):
                self.spend(len(current) + 1)
                stack.extend(current.values())
            elif isinstance(current, list | tuple):
                self.spend(len(current) + 1)
                stack.extend(current)


def measure(value: Any, limit: int = MAX_REFERENCE_NODES) -> None:
    """Raise ReferenceTooLarge when ``value``'s tree has more than ``limit`` values (a value
    held in several places counts in each, as serialising it would write it)."""
    budget = _Budget(limit)
    try:
        budget.walk(value)
    except ReferenceTooLarge:
        raise ReferenceTooLarge(
            f"its value has more than {limit:,} values (a value it repeats counts each time), "
            f"over the limit of {limit:,} values per reference"
        ) from None


class _BoundedFunctions(Functions):
    """JMESPath's functions, each charged for the values it reads before it runs."""

    def __init__(self, budget: _Budget) -> None:
        super().__init__()
        self._budget = budget

    def call_function(self, function_name: str, resolved_args: list[Any]) -> Any:
        budget = self._budget
        budget.spend(1)
        for argument in resolved_args:
            if function_name in _DEEP_FUNCTIONS:
                budget.walk(argument)
            elif isinstance(argument, list | dict | str):
                budget.spend(len(argument) // 64 if isinstance(argument, str) else len(argument))
        return super().call_function(function_name, resolved_args)


class _BoundedInterpreter(TreeInterpreter):
    """JMESPath's interpreter, charging every node it visits and every item it copies."""

    def __init__(self, budget: _Budget) -> None:
        super().__init__(Options(custom_functions=_BoundedFunctions(budget)))
        self._budget = budget

    def visit(self, node: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self._budget.spend(1)
        return super().visit(node, *args, **kwargs)

    def visit_flatten(self, node: dict[str, Any], value: Any) -> Any:
        base = self.visit(node["children"][0], value)
        if not isinstance(base, list):
            return None
        self._budget.spend(len(base))
        self._budget.spend(sum(len(item) for item in base if isinstance(item, list)))
        merged: list[Any] = []
        for element in base:
            if isinstance(element, list):
                merged.extend(element)
            else:
                merged.append(element)
        return merged

    def visit_slice(self, node: dict[str, Any], value: Any) -> Any:
        if isinstance(value, list):
            self._budget.spend(len(value))
        return super().visit_slice(node, value)

    def visit_comparator(self, node: dict[str, Any], value: Any) -> Any:
        if node["value"] not in self._EQUALITY_OPS:
            return super().visit_comparator(node, value)
        left = self.visit(node["children"][0], value)
        right = self.visit(node["children"][1], value)
        if isinstance(left, list | dict) and isinstance(right, list | dict) and left is not right:
            self._budget.walk(left)  # deep equality walks both trees
            self._budget.walk(right)
        return self.COMPARATOR_FUNC[node["value"]](left, right)


def bounded_search(compiled: ParsedResult, data: Any, limit: int = MAX_REFERENCE_NODES) -> Any:
    """``compiled.search(data)``, within ``limit`` values of work and of result size."""
    result = _BoundedInterpreter(_Budget(limit)).visit(compiled.parsed, data)
    measure(result, limit)
    return result


def growth(node: Any, cap: int = MAX_GROWTH) -> int:
    """How many times, at most, an expression's result can repeat its input (capped at
    ``cap + 1``): a multi-select adds up its parts, a pipe or projection multiplies them."""
    if not isinstance(node, dict):
        return 1
    kind = node.get("type")
    children = [child for child in node.get("children", ()) if isinstance(child, dict)]
    if kind in ("multi_select_list", "multi_select_dict"):
        total = sum(growth(child, cap) for child in children)
    elif kind in (
        "subexpression",
        "index_expression",
        "pipe",
        "projection",
        "value_projection",
        "filter_projection",
    ):
        total = 1
        for child in children:
            total = min(total * growth(child, cap), cap + 1)
    elif kind == "function_expression":
        if node.get("value") in _SCALAR_FUNCTIONS:
            return 1
        total = sum(growth(child, cap) for child in children)
    elif kind in ("or_expression", "and_expression"):
        total = max((growth(child, cap) for child in children), default=1)
    elif kind in ("comparator", "not_expression", "literal"):
        return 1
    else:  # field, index, slice, current, identity, flatten, expref, key_val_pair
        total = max((growth(child, cap) for child in children), default=1)
    return min(max(total, 1), cap + 1)
