"""The inside of a ``${...}`` parsed and analysed: a plain reference (a root and a path) or a
whole-scope expression (one ``Reference`` per name it reads), with the plain steps its value is
read by. Each text is analysed once (``analyse`` is cached)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

from jmespath.parser import ParsedResult

from multi_task_orchestrator.engine.expressions.compiling import compile_checked
from multi_task_orchestrator.engine.expressions.model import (
    RESERVED_ROOTS,
    TASK_FIELDS,
    ExpressionError,
    Reference,
    ReferenceKind,
    Step,
    format_steps,
    show,
)
from multi_task_orchestrator.engine.expressions.tree import leading_steps, plain_steps, root_reads
from multi_task_orchestrator.engine.issues import did_you_mean

MAX_EXPRESSION_LENGTH = 2000

_ROOT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_FUNCTION_CALL = re.compile(r"\s*\(")
_VAULT = re.compile(r"vault\.([A-Za-z_][A-Za-z0-9_.-]*)")
_EXAMPLES = "${task_id.output}, ${vars.NAME}, ${item}, ${index} or ${vault.NAME}"


@dataclass(frozen=True, slots=True)
class Parsed:
    """A reference's text analysed: the names it reads and how its value is read."""

    refs: tuple[Reference, ...]
    compiled: ParsedResult | None  # `path` for a plain reference, the whole text for an expression
    chain: tuple[Step, ...] | None  # `path` as plain steps, to tell an absent key from a null
    head: str | None  # the first name `path` reads, when it is read unconditionally


def parse_reference(text: str) -> Reference:
    """Parse the inside of ``${...}``; raise ExpressionError with a hint when it is malformed.

    For a whole-scope expression this is the first name it reads (``find_references`` lists all).
    """
    return analyse(text).refs[0]


# Large enough for every reference of a document of 10,000 tasks: the run reads them all again
# after validation, and an LRU cache smaller than one pass over them keeps none.
@lru_cache(maxsize=16_384)
def analyse(text: str) -> Parsed:
    """The inside of ``${...}`` analysed; ExpressionError with a hint when it is malformed."""
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f"a reference is {len(text)} characters long; the limit is {MAX_EXPRESSION_LENGTH}",
            hint="move the logic into a data_processing task and refer to its output",
        )
    text = text.strip()
    if not text:
        raise ExpressionError(
            "empty reference '${}'", hint=f"write {_EXAMPLES}; for a literal '${{' write '$${{'"
        )
    try:
        root_match = _ROOT.match(text)
        if root_match is None or _FUNCTION_CALL.match(text, root_match.end()):
            return _analyse_expression(text)
        return _analyse_plain(text, root_match.group(), text[root_match.end() :])
    except RecursionError:
        raise ExpressionError(
            f"{show(text)} is nested too deeply", hint="simplify it or use a data_processing task"
        ) from None


def _analyse_plain(text: str, root: str, rest: str) -> Parsed:
    if root == "vault":
        match = _VAULT.fullmatch(text)
        if match is None:
            raise ExpressionError(
                f"{show(text)} is not a secret reference",
                hint="write ${vault.NAME}; names use letters, digits, '_', '.' and '-'",
            )
        return Parsed((Reference(text, "vault", match.group(1), "vault"),), None, None, None)
    if root == "index":
        if rest:
            raise ExpressionError(
                f"{show(text)}: index is the item's position, a number, and takes no path",
                hint="write ${index}",
            )
        return Parsed((Reference(text, "index", "", "index"),), None, None, None)

    kind = cast(ReferenceKind, root if root in RESERVED_ROOTS else "task")
    if not rest:
        return Parsed((Reference(text, root, "", kind),), None, (), None)
    if rest.startswith("."):
        path = rest[1:]
    elif rest.startswith("[") and kind != "task":
        path = rest
    else:
        raise _bad_continuation(text, root, kind)

    compiled = compile_checked(path, text)
    ast = compiled.parsed
    read_names = [name for name, _ in root_reads(ast)]
    if kind == "task" and read_names and read_names[0] not in (*TASK_FIELDS, "@"):
        name = read_names[0]
        raise ExpressionError(
            f"{show(text)} reads '{name}' from task '{root}', which has only output, state "
            "and error",
            hint=did_you_mean(name, TASK_FIELDS) or f"did you mean ${{{root}.output.{path}}}?",
        )
    # `a.output || b.output` and `item.x || vars.y` read other names beside the root: they mean
    # the whole scope, not names inside `a` or `item`.
    if any(_names_the_scope(name, kind) for name in read_names[1:]):
        return _analyse_expression(text)
    leading = leading_steps(ast)
    head = leading[0] if leading and isinstance(leading[0], str) else None
    return Parsed((Reference(text, root, path, kind),), compiled, plain_steps(ast), head)


def _analyse_expression(text: str) -> Parsed:
    compiled = compile_checked(text, text)
    refs: list[Reference] = []
    for name, after in root_reads(compiled.parsed):
        refs.append(_expression_read(text, name, after))
    if not refs:
        raise ExpressionError(
            f"{show(text)} reads nothing from the run",
            hint="write the value itself, without ${...}; or start with a task id, vars or item",
        )
    return Parsed(tuple(dict.fromkeys(refs)), compiled, None, None)


def _expression_read(text: str, name: str, after: tuple[Step, ...]) -> Reference:
    if name == "@":
        raise ExpressionError(
            f"{show(text)} reads the whole run ('@' at the top level)",
            hint="name what you read: a task's output (a.output), vars or item",
        )
    if name == "vault":
        raise ExpressionError(
            f"{show(text)} uses a secret inside an expression",
            hint="a secret can only be written on its own, as ${vault.NAME}",
        )
    if name == "index":
        if after:
            raise ExpressionError(
                f"{show(text)}: index is the item's position, a number, and takes no path",
                hint="write index",
            )
        return Reference(text, "index", "", "index", expression=True)
    if name in ("vars", "item"):
        return Reference(text, name, format_steps(after), cast(ReferenceKind, name), True)
    if not after or after[0] not in TASK_FIELDS:
        raise ExpressionError(
            f"{show(text)} reads task '{name}' without saying which part",
            hint=f"write {name}.output (or {name}.state, {name}.error)",
        )
    return Reference(text, name, format_steps(after), "task", expression=True)


def _names_the_scope(name: str, kind: ReferenceKind) -> bool:
    return name in RESERVED_ROOTS or (kind == "task" and name not in (*TASK_FIELDS, "@"))


def _bad_continuation(text: str, root: str, kind: ReferenceKind) -> ExpressionError:
    if kind == "task":
        hint = (
            f"write ${{{root}.output...}}, e.g. ${{{root}.output[0]}}, ${{length({root}.output)}}"
        )
    else:
        hint = f"write ${{{root}.NAME}} or ${{{root}[0]}}; for a function, ${{length({root})}}"
    return ExpressionError(f"{show(text)}: expected '.' or '[' after '{root}'", hint=hint)
