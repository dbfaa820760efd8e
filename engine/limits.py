"""Bounds on what a hostile document or server can make the engine build.

- ``MAX_DATA_DEPTH``: how deeply JSON a server or file hands over may nest. Deeper data fails
  the attempt (class ``too_deep``) before anything walks it, so no recursive walk (redaction,
  JMESPath, the JSON encoder) can exhaust the stack. 128 levels is far beyond real API data
  and leaves the Python stack (1000 frames) ample room for the walks that follow.
- ``MAX_EXPRESSION_NESTING`` / ``MAX_EXPRESSION_DEPTH``: how deeply a JMESPath expression may
  nest brackets, and how deep its parsed tree may be. ``compile_expression`` checks both (and
  turns a ``RecursionError`` of the parser into the same error), so a document with deep
  parentheses is refused at validation instead of crashing the parser or the search.
- ``search``: a runner's JMESPath search (``extract``, ``paginate``, ``where``...), within the
  same budget as a ``${...}`` reference (``engine/expression_budget.py``); past it the attempt
  fails with class ``too_large``. ``compile_expression`` also refuses an expression that can
  repeat its input more than ``MAX_GROWTH`` times.
- ``DEFAULT_MAX_RESPONSE_BYTES`` / ``DEFAULT_MAX_WRITE_BYTES``: the defaults of the runners'
  size settings (``HttpSettings``, ``FileSettings``).
"""

from __future__ import annotations

from typing import Any

import jmespath
from jmespath import exceptions as jmespath_exceptions
from jmespath.exceptions import JMESPathError
from jmespath.lexer import Lexer
from jmespath.parser import ParsedResult

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.expression_budget import (
    MAX_GROWTH,
    ReferenceTooLarge,
    bounded_search,
    growth,
)

MAX_DATA_DEPTH = 128
MAX_EXPRESSION_NESTING = 32
MAX_EXPRESSION_DEPTH = 64
# a runner's search may walk a whole response (up to ORCHESTRATOR_MAX_RESPONSE_BYTES), so more
# than a reference: about a second of work
MAX_SEARCH_NODES = 2_000_000
MIB = 1024 * 1024
# A response is held whole while it is redacted (a secret may straddle any chunk boundary) and
# parsed, and parsed JSON takes several times its size: 50 MiB keeps one task's peak to a few
# hundred MiB while leaving room for large API exports and downloads.
DEFAULT_MAX_RESPONSE_BYTES = 50 * MIB
# The same as the most file_processing reads at once: what one task writes, another can read.
DEFAULT_MAX_WRITE_BYTES = 64 * MIB


def show_bytes(size: int) -> str:
    """``size`` for a message: ``50 MiB``, ``1.5 MiB``, ``2048 bytes``."""
    if size >= MIB:
        return f"{size / MIB:.4g} MiB"
    return f"{size} bytes"


# --- nested data ----------------------------------------------------------------------------


def nests_deeper(value: Any, limit: int = MAX_DATA_DEPTH) -> bool:
    """Whether lists and objects in JSON-able ``value`` nest more than ``limit`` levels deep
    (walked without recursion, so any depth can be measured)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


# --- JMESPath expressions -------------------------------------------------------------------


class ExpressionTooComplex(JMESPathError):
    """A JMESPath expression nested too deeply to be compiled and run safely."""


_OPENING = frozenset({"lparen", "lbracket", "lbrace", "filter"})
_CLOSING = frozenset({"rparen", "rbracket", "rbrace"})


def jmespath_problem(exc: JMESPathError) -> str:
    """What is wrong with an expression, said in one line."""
    if isinstance(exc, jmespath_exceptions.EmptyExpressionError):
        return "the expression is empty"
    if isinstance(exc, jmespath_exceptions.IncompleteExpressionError):
        return "the expression ends too early"
    if isinstance(exc, jmespath_exceptions.LexerError):
        return f"{exc.message} at character {exc.lexer_position + 1}"
    if isinstance(exc, jmespath_exceptions.ParseError) and exc.token_value is not None:
        return f"unexpected '{exc.token_value}' at character {exc.lex_position + 1}"
    return str(exc).splitlines()[0]


def compile_expression(text: str) -> ParsedResult:
    """``jmespath.compile(text)``, refusing with ``ExpressionTooComplex`` (a JMESPathError, so
    every caller's error handling reports it) an expression that nests brackets more than
    ``MAX_EXPRESSION_NESTING`` levels or parses into a tree deeper than
    ``MAX_EXPRESSION_DEPTH``."""
    nesting = deepest = 0
    for token in Lexer().tokenize(text):  # iterative; a lexing error is raised as it is
        kind = token["type"]
        if kind in _OPENING:
            nesting += 1
            deepest = max(deepest, nesting)
        elif kind in _CLOSING:
            nesting -= 1
    if deepest > MAX_EXPRESSION_NESTING:
        raise ExpressionTooComplex(
            f"the expression nests brackets {deepest} levels deep, more than the "
            f"{MAX_EXPRESSION_NESTING} allowed; simplify it"
        )
    try:
        compiled = jmespath.compile(text)
    except RecursionError:
        raise ExpressionTooComplex(
            "the expression nests too deeply to be parsed; simplify it"
        ) from None
    if _tree_depth(compiled.parsed) > MAX_EXPRESSION_DEPTH:
        raise ExpressionTooComplex(
            f"the expression is more than {MAX_EXPRESSION_DEPTH} operations deep (e.g. a long "
            "chain of pipes); split it across tasks or simplify it"
        )
    if growth(compiled.parsed) > MAX_GROWTH:
        raise ExpressionTooComplex(
            f"the expression can repeat its input more than {MAX_GROWTH:,} times (multi-selects "
            "such as [@, @] multiplied along a pipe): select each value once, and repeat work in "
            "a data_processing task"
        )
    return compiled


def search(compiled: ParsedResult, data: Any) -> Any:
    """``compiled.search(data)`` within ``MAX_SEARCH_NODES`` values of work and of result;
    TaskError ``too_large`` past it."""
    try:
        return bounded_search(compiled, data, MAX_SEARCH_NODES)
    except ReferenceTooLarge as exc:
        raise TaskError(f"JMESPath '{compiled.expression}': {exc}", "too_large") from None


def _tree_depth(node: Any) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(node, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict):
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in item.get("children", ()))
    return deepest


def run_query(text: str, data: Any) -> Any:
    """A JMESPath expression a caller asks of ``data`` (``get_results``' ``query``), compiled
    and searched within the bounds of a document's expressions; ``ValueError`` saying in one
    line what is wrong otherwise."""
    try:
        return search(compile_expression(text), data)
    except JMESPathError as exc:
        raise ValueError(jmespath_problem(exc)) from None
    except TaskError as exc:
        raise ValueError(str(exc)) from None
