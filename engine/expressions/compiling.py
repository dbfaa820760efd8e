"""A reference's JMESPath compiled once and checked: JMESPath's deprecated literals, unknown
functions and wrong argument counts are refused, and a syntax error is explained."""

from __future__ import annotations

import warnings
from contextlib import suppress
from typing import Any

from jmespath.exceptions import IncompleteExpressionError, JMESPathError, LexerError
from jmespath.functions import Functions
from jmespath.lexer import Lexer
from jmespath.parser import ParsedResult

from multi_task_orchestrator.engine.expressions.model import ExpressionError, show
from multi_task_orchestrator.engine.expressions.tree import nodes
from multi_task_orchestrator.engine.issues import did_you_mean
from multi_task_orchestrator.engine.limits import ExpressionTooComplex, compile_expression

_FUNCTIONS = Functions().FUNCTION_TABLE


def compile_checked(expression: str, text: str) -> ParsedResult:
    """``expression`` compiled and checked; ``text`` is the whole reference, for messages.

    A valid expression is compiled once, however many references write it (``output`` in every
    ``${task.output}``); only valid ones are kept, so every failure is explained in its own text.
    """
    compiled = _COMPILED.get(expression)
    if compiled is not None:
        return compiled
    if "`" in expression and _uses_deprecated_literal(expression):
        raise ExpressionError(
            f"{show(text)} writes a string in JMESPath's deprecated `text` form",
            hint="write a string as 'text', or as JSON inside backticks: `\"text\"`",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PendingDeprecationWarning)  # reported just above
            compiled = compile_expression(expression)
    except JMESPathError as error:
        hint = "JMESPath syntax, e.g. a.output.items[0].title, a.output[?price > `10`].name"
        if "-" in expression or " " in expression.strip():
            hint = 'quote names that hold dashes or spaces: a.output."my-key"'
        if isinstance(error, ExpressionTooComplex):
            hint = "split the work across tasks, or simplify the expression"
        offset = len(text) - len(expression) if text.endswith(expression) else 0
        raise ExpressionError(
            f"{show(text)} is not a valid JMESPath expression: {_syntax_problem(error, offset)}",
            hint=hint,
        ) from None
    _check_functions(compiled.parsed, text)
    if len(_COMPILED) >= _MAX_COMPILED:
        _COMPILED.clear()
    _COMPILED[expression] = compiled
    return compiled


_COMPILED: dict[str, ParsedResult] = {}
_MAX_COMPILED = 4096


def _uses_deprecated_literal(expression: str) -> bool:
    # jmespath only warns about `text` while lexing (and caches what it parsed), so lex first.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PendingDeprecationWarning)
        with suppress(JMESPathError):  # a syntax error is reported by the compile that follows
            for _ in Lexer().tokenize(expression):
                pass
    return any(issubclass(warning.category, PendingDeprecationWarning) for warning in caught)


def _check_functions(node: Any, text: str) -> None:
    for each in nodes(node):
        if each.get("type") != "function_expression":
            continue
        name = each["value"]
        if name not in _FUNCTIONS:
            raise ExpressionError(
                f"{show(text)} calls unknown function '{name}'",
                hint=did_you_mean(name, _FUNCTIONS)
                or "functions: " + ", ".join(sorted(_FUNCTIONS)),
            )
        signature = _FUNCTIONS[name]["signature"]
        given = len(each["children"])
        variadic = any(argument.get("variadic") for argument in signature)
        if given < len(signature) or (given > len(signature) and not variadic):
            expected = f"at least {len(signature)}" if variadic else str(len(signature))
            raise ExpressionError(
                f"{show(text)}: {name}() takes {expected} argument(s), got {given}",
                hint="see the JMESPath function reference at https://jmespath.org/specification.html",
            )


def _syntax_problem(error: JMESPathError, offset: int) -> str:
    if isinstance(error, ExpressionTooComplex):
        return str(error)
    if isinstance(error, IncompleteExpressionError):
        return "it ends too early"
    position = getattr(error, "lex_position", None)
    at = f" at character {position + offset + 1}" if isinstance(position, int) else ""
    if isinstance(error, LexerError):
        return f"{error.message}{at}"
    if getattr(error, "token_type", None) == "EOF":
        return "it ends too early"
    return f"unexpected '{getattr(error, 'token_value', '?')}'{at}"
