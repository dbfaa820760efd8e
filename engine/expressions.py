"""The ``${...}`` reference language of orchestration documents.

A reference names where a value comes from and, after that name, a JMESPath expression:

- ``${task_id.output.items[0]}`` — the JMESPath ``output.items[0]`` over the finished task's
  ``{"output": ..., "state": ..., "error": ...}``; ``${task_id}`` alone is its output;
- ``${vars.base}``, ``${item.name}``, ``${index}`` — the document's vars, and the current item and
  its position inside a ``for_each`` task;
- ``${vault.NAME}`` — a secret. It is never resolved here: it stays in the text until a runner
  reveals it, naming the host it will send it to (``reveal_secrets``);
- a whole-scope expression, when the text starts with a JMESPath function call, ``[`` or ``{``
  (or anything else that is not a name): ``${length(a.output)}``,
  ``${merge(a.output, b.output)}``, ``${not_null(vars.title, item.title)}``. It is evaluated
  against ``{task_id: {"output", "state", "error"}, "vars": ..., "item": ..., "index": ...}``, so
  task ids with dashes are quoted (``"site-a".output``) and a task is read through ``.output``,
  ``.state`` or ``.error``. Such a reference is reported as one ``Reference`` per name it reads
  (``expression=True``, all with the same ``text``), so a validator checks each name.

A string that is exactly one reference keeps the value's type; a reference inside a longer string
is interpolated. ``$${`` writes a literal ``${``. In the seed's plain form, a string such as
``"extract_site_a.output"`` directly under an ``inputs:`` or ``input:`` key is a reference as if it
were written ``${extract_site_a.output}``.

There is no ``eval`` and no attribute access anywhere: names index mappings and the rest is
JMESPath. Every problem is an ``ExpressionError`` naming the reference and what to do about it.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Collection, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, cast

from jmespath.exceptions import IncompleteExpressionError, JMESPathError, LexerError
from jmespath.functions import Functions
from jmespath.lexer import Lexer
from jmespath.parser import ParsedResult

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.expression_budget import ReferenceTooLarge, bounded_search
from multi_task_orchestrator.engine.issues import did_you_mean
from multi_task_orchestrator.engine.limits import ExpressionTooComplex, compile_expression
from multi_task_orchestrator.engine.secrets import SecretResolver

MAX_EXPRESSION_LENGTH = 2000

ReferenceKind = Literal["task", "vars", "item", "index", "vault"]
Location = tuple[str | int, ...]
Step = str | int

TASK_FIELDS = ("output", "state", "error")
INPUT_KEYS = frozenset({"inputs", "input"})
_RESERVED_ROOTS = frozenset({"vars", "item", "index", "vault"})

_ROOT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_FUNCTION_CALL = re.compile(r"\s*\(")
_VAULT = re.compile(r"vault\.([A-Za-z_][A-Za-z0-9_.-]*)")
_BARE_TASK_OUTPUT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\.output(?:\b.*)?")
_JMESPATH_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FUNCTIONS = Functions().FUNCTION_TABLE
_EXAMPLES = "${task_id.output}, ${vars.NAME}, ${item}, ${index} or ${vault.NAME}"


class ExpressionError(Exception):
    """A reference that cannot be parsed or resolved; ``hint`` says how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


@dataclass(frozen=True, slots=True)
class Reference:
    """One parsed ``${...}``: where its value comes from and the JMESPath applied there.

    ``path`` has no leading dot: ``"output.items[0]"`` for a task, ``"a.b"`` for vars, the secret's
    name for vault, ``""`` for none. For a whole-scope expression (``expression=True``) ``root`` and
    ``path`` describe one name the expression reads and the plain steps that follow it.
    """

    text: str
    root: str
    path: str
    kind: ReferenceKind
    expression: bool = False


@dataclass(slots=True)
class Scope:
    """What references can see: finished tasks (id -> output, state, error), vars, the item."""

    outputs: Mapping[str, Any]
    vars: Mapping[str, Any] = field(default_factory=dict)
    item: Any = None
    index: int | None = None
    has_item: bool = False


# ---------------------------------------------------------------------------------------------
# Parsing


@dataclass(frozen=True, slots=True)
class _Parsed:
    refs: tuple[Reference, ...]
    compiled: ParsedResult | None  # `path` for a plain reference, the whole text for an expression
    chain: tuple[Step, ...] | None  # `path` as plain steps, to tell an absent key from a null
    head: str | None  # the first name `path` reads, when it is read unconditionally


def parse_reference(text: str) -> Reference:
    """Parse the inside of ``${...}``; raise ExpressionError with a hint when it is malformed.

    For a whole-scope expression this is the first name it reads (``find_references`` lists all).
    """
    return _analyse(text).refs[0]


# Large enough for every reference of a document of 10,000 tasks: the run reads them all again
# after validation, and an LRU cache smaller than one pass over them keeps none.
@lru_cache(maxsize=16_384)
def _analyse(text: str) -> _Parsed:
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
            f"{_show(text)} is nested too deeply", hint="simplify it or use a data_processing task"
        ) from None


def _analyse_plain(text: str, root: str, rest: str) -> _Parsed:
    if root == "vault":
        match = _VAULT.fullmatch(text)
        if match is None:
            raise ExpressionError(
                f"{_show(text)} is not a secret reference",
                hint="write ${vault.NAME}; names use letters, digits, '_', '.' and '-'",
            )
        return _Parsed((Reference(text, "vault", match.group(1), "vault"),), None, None, None)
    if root == "index":
        if rest:
            raise ExpressionError(
                f"{_show(text)}: index is the item's position, a number, and takes no path",
                hint="write ${index}",
            )
        return _Parsed((Reference(text, "index", "", "index"),), None, None, None)

    kind = cast(ReferenceKind, root if root in _RESERVED_ROOTS else "task")
    if not rest:
        return _Parsed((Reference(text, root, "", kind),), None, (), None)
    if rest.startswith("."):
        path = rest[1:]
    elif rest.startswith("[") and kind != "task":
        path = rest
    else:
        raise _bad_continuation(text, root, kind)

    compiled = _compile(path, text)
    ast = compiled.parsed
    read_names = [name for name, _ in _root_reads(ast)]
    if kind == "task" and read_names and read_names[0] not in (*TASK_FIELDS, "@"):
        name = read_names[0]
        raise ExpressionError(
            f"{_show(text)} reads '{name}' from task '{root}', which has only output, state "
            "and error",
            hint=did_you_mean(name, TASK_FIELDS) or f"did you mean ${{{root}.output.{path}}}?",
        )
    # `a.output || b.output` and `item.x || vars.y` read other names beside the root: they mean
    # the whole scope, not names inside `a` or `item`.
    if any(_names_the_scope(name, kind) for name in read_names[1:]):
        return _analyse_expression(text)
    leading = _leading_steps(ast)
    head = leading[0] if leading and isinstance(leading[0], str) else None
    return _Parsed((Reference(text, root, path, kind),), compiled, _plain_steps(ast), head)


def _analyse_expression(text: str) -> _Parsed:
    compiled = _compile(text, text)
    refs: list[Reference] = []
    for name, after in _root_reads(compiled.parsed):
        refs.append(_expression_read(text, name, after))
    if not refs:
        raise ExpressionError(
            f"{_show(text)} reads nothing from the run",
            hint="write the value itself, without ${...}; or start with a task id, vars or item",
        )
    return _Parsed(tuple(dict.fromkeys(refs)), compiled, None, None)


def _expression_read(text: str, name: str, after: tuple[Step, ...]) -> Reference:
    if name == "@":
        raise ExpressionError(
            f"{_show(text)} reads the whole run ('@' at the top level)",
            hint="name what you read: a task's output (a.output), vars or item",
        )
    if name == "vault":
        raise ExpressionError(
            f"{_show(text)} uses a secret inside an expression",
            hint="a secret can only be written on its own, as ${vault.NAME}",
        )
    if name == "index":
        if after:
            raise ExpressionError(
                f"{_show(text)}: index is the item's position, a number, and takes no path",
                hint="write index",
            )
        return Reference(text, "index", "", "index", expression=True)
    if name in ("vars", "item"):
        return Reference(text, name, _format_steps(after), cast(ReferenceKind, name), True)
    if not after or after[0] not in TASK_FIELDS:
        raise ExpressionError(
            f"{_show(text)} reads task '{name}' without saying which part",
            hint=f"write {name}.output (or {name}.state, {name}.error)",
        )
    return Reference(text, name, _format_steps(after), "task", expression=True)


def _compile(expression: str, text: str) -> ParsedResult:
    """``expression`` compiled and checked; ``text`` is the whole reference, for messages.

    A valid expression is compiled once, however many references write it (``output`` in every
    ``${task.output}``); only valid ones are kept, so every failure is explained in its own text.
    """
    compiled = _COMPILED.get(expression)
    if compiled is not None:
        return compiled
    if "`" in expression and _uses_deprecated_literal(expression):
        raise ExpressionError(
            f"{_show(text)} writes a string in JMESPath's deprecated `text` form",
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
            f"{_show(text)} is not a valid JMESPath expression: {_syntax_problem(error, offset)}",
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
    for each in _nodes(node):
        if each.get("type") != "function_expression":
            continue
        name = each["value"]
        if name not in _FUNCTIONS:
            raise ExpressionError(
                f"{_show(text)} calls unknown function '{name}'",
                hint=did_you_mean(name, _FUNCTIONS)
                or "functions: " + ", ".join(sorted(_FUNCTIONS)),
            )
        signature = _FUNCTIONS[name]["signature"]
        given = len(each["children"])
        variadic = any(argument.get("variadic") for argument in signature)
        if given < len(signature) or (given > len(signature) and not variadic):
            expected = f"at least {len(signature)}" if variadic else str(len(signature))
            raise ExpressionError(
                f"{_show(text)}: {name}() takes {expected} argument(s), got {given}",
                hint="see the JMESPath function reference at https://jmespath.org/specification.html",
            )


def _names_the_scope(name: str, kind: ReferenceKind) -> bool:
    return name in _RESERVED_ROOTS or (kind == "task" and name not in (*TASK_FIELDS, "@"))


def _bad_continuation(text: str, root: str, kind: ReferenceKind) -> ExpressionError:
    if kind == "task":
        hint = (
            f"write ${{{root}.output...}}, e.g. ${{{root}.output[0]}}, ${{length({root}.output)}}"
        )
    else:
        hint = f"write ${{{root}.NAME}} or ${{{root}[0]}}; for a function, ${{length({root})}}"
    return ExpressionError(f"{_show(text)}: expected '.' or '[' after '{root}'", hint=hint)


# JMESPath's syntax tree: which names an expression reads from the top-level scope.

_SEQUENCE_NODES = frozenset({"subexpression", "index_expression"})
_LEFT_AT_ROOT_NODES = frozenset({"projection", "filter_projection", "value_projection", "pipe"})


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for child in node.get("children", ()):
            yield from _nodes(child)


def _plain_steps(node: Any) -> tuple[Step, ...] | None:
    """The steps of a path made only of names and indexes (``a.b[0].c``), else None."""
    kind = node.get("type") if isinstance(node, dict) else None
    if kind == "field" or kind == "index":
        return (node["value"],)
    if kind == "identity":
        return ()
    if kind in _SEQUENCE_NODES:
        steps: tuple[Step, ...] = ()
        for child in node["children"]:
            more = _plain_steps(child)
            if more is None:
                return None
            steps += more
        return steps
    return None


def _steps_in_sequence(children: list[Any]) -> tuple[Step, ...]:
    steps: tuple[Step, ...] = ()
    for child in children:
        more = _plain_steps(child)
        if more is None:
            return steps + _leading_steps(child)
        steps += more
    return steps


def _leading_steps(node: Any) -> tuple[Step, ...]:
    """The plain steps an expression starts with, whatever it does afterwards."""
    kind = node.get("type") if isinstance(node, dict) else None
    if kind in _SEQUENCE_NODES:
        return _steps_in_sequence(node["children"])
    if kind in _LEFT_AT_ROOT_NODES or kind == "flatten":
        return _leading_steps(node["children"][0])
    return _plain_steps(node) or ()


def _root_reads(node: Any) -> list[tuple[str, tuple[Step, ...]]]:
    """Each name read from the top-level value, with the plain steps that follow it."""
    reads: list[tuple[str, tuple[Step, ...]]] = []

    def visit(node: Any, at_root: bool) -> None:
        if not isinstance(node, dict):
            return
        kind, children = node.get("type"), node.get("children", [])
        if kind == "field":
            if at_root:
                reads.append((node["value"], ()))
        elif kind in ("current", "identity"):
            if at_root:
                reads.append(("@", ()))
        elif kind in _SEQUENCE_NODES:
            head = children[0]
            if at_root and isinstance(head, dict) and head.get("type") == "field":
                reads.append((head["value"], _steps_in_sequence(children[1:])))
            else:
                visit(head, at_root)
            for child in children[1:]:
                visit(child, False)
        elif kind in _LEFT_AT_ROOT_NODES:
            visit(children[0], at_root)
            for child in children[1:]:
                visit(child, False)
        elif kind == "expref":
            for child in children:
                visit(child, False)
        else:
            for child in children:
                visit(child, at_root)

    visit(node, True)
    return reads


# ---------------------------------------------------------------------------------------------
# Scanning strings for ${...}


@dataclass(frozen=True, slots=True)
class _Text:
    text: str


@dataclass(frozen=True, slots=True)
class _Escape:
    """``$${``: a literal ``${``."""


@dataclass(frozen=True, slots=True)
class _Ref:
    inner: str
    raw: str  # exactly as written, ``${`` to ``}``


@dataclass(frozen=True, slots=True)
class _Unclosed:
    raw: str


_Segment = _Text | _Escape | _Ref | _Unclosed
_QUOTES = frozenset("'\"`")
_PLAIN_INNER = re.compile(r"[^{}'\"`]*}")  # up to the first '}', with no braces or quotes before
_WHOLE_PLAIN_REFERENCE = re.compile(r"\$\{([^{}'\"`]*)}")


def _scan(text: str) -> list[_Segment]:
    segments: list[_Segment] = []
    position = 0
    while (start := text.find("${", position)) != -1:
        if start > position and text[start - 1] == "$":
            if start - 1 > position:
                segments.append(_Text(text[position : start - 1]))
            segments.append(_Escape())
            position = start + 2
            continue
        if start > position:
            segments.append(_Text(text[position:start]))
        plain = _PLAIN_INNER.match(text, start + 2)  # what _closing_brace finds, when it is easy
        end = plain.end() - 1 if plain else _closing_brace(text, start + 2)
        if end is None:
            segments.append(_Unclosed(text[start:]))
            return segments
        segments.append(_Ref(text[start + 2 : end], text[start : end + 1]))
        position = end + 1
    if position < len(text):
        segments.append(_Text(text[position:]))
    return segments


def _closing_brace(text: str, position: int) -> int | None:
    """Where the ``}`` closing a reference is, skipping JMESPath's braces and quoted parts."""
    depth = 0
    while position < len(text):
        char = text[position]
        if char in _QUOTES:
            position += 1
            while position < len(text) and text[position] != char:
                position += 2 if text[position] == "\\" else 1
            if position >= len(text):
                return None
        elif char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return position
            depth -= 1
        position += 1
    return None


def _unclosed_error(raw: str) -> ExpressionError:
    shown = raw if len(raw) <= 60 else raw[:57] + "..."
    return ExpressionError(
        f"'{shown}' has no closing '}}'",
        hint="close it with '}', or write '$${' for a literal '${'",
    )


def _is_bare_reference(text: str) -> bool:
    """The seed's plain form, ``"extract_site_a.output"``, as written under ``inputs:``."""
    return _BARE_TASK_OUTPUT.fullmatch(text) is not None


# ---------------------------------------------------------------------------------------------
# Finding references


def find_references(
    value: Any, loc: Location = ()
) -> list[tuple[Location, Reference | ExpressionError]]:
    """Every reference inside ``value`` with the location of the string that holds it.

    A malformed reference is listed as its ExpressionError, so all of them can be reported at
    once. A whole-scope expression is listed once per name it reads.
    """
    found: list[tuple[Location, Reference | ExpressionError]] = []
    strings: list[tuple[Location, str, bool]] = []
    _strings(value, tuple(loc), False, strings)
    for where, text, under_input_key in strings:
        if under_input_key and _is_bare_reference(text):
            inners: list[str | ExpressionError] = [text]
        elif whole := _WHOLE_PLAIN_REFERENCE.fullmatch(text):  # what _scan finds, faster
            inners = [whole.group(1)]
        elif "${" in text:
            inners = [
                segment.inner if isinstance(segment, _Ref) else _unclosed_error(segment.raw)
                for segment in _scan(text)
                if isinstance(segment, _Ref | _Unclosed)
            ]
        else:
            continue
        for inner in inners:
            if isinstance(inner, ExpressionError):
                found.append((where, inner))
                continue
            try:
                found.extend((where, reference) for reference in _analyse(inner).refs)
            except ExpressionError as error:
                found.append((where, error))
    return found


def _strings(
    value: Any, loc: Location, under_input_key: bool, out: list[tuple[Location, str, bool]]
) -> None:
    """Add to ``out`` each string in ``value`` that may hold a reference (one with ``${``, or
    any directly under an ``inputs:`` key), with its location and whether it is under one.

    Strings and numbers inside a container are judged in its loop: most values of a config are
    plain, and a call with a new location for each would cost more than the rest of the walk.
    """
    if isinstance(value, str):
        if under_input_key or "${" in value:
            out.append((loc, value, under_input_key))
    elif isinstance(value, dict) or (
        not isinstance(value, (list, tuple)) and isinstance(value, Mapping)  # the ABC is slow
    ):
        for key, child in value.items():
            if isinstance(child, str):
                if "${" in child or key in INPUT_KEYS:
                    out.append(((*loc, key), child, key in INPUT_KEYS))
            elif not isinstance(child, _LEAVES):
                _strings(child, (*loc, key), key in INPUT_KEYS, out)
    elif isinstance(value, list | tuple):
        for position, child in enumerate(value):
            if isinstance(child, str):
                if under_input_key or "${" in child:
                    out.append(((*loc, position), child, under_input_key))
            elif not isinstance(child, _LEAVES):
                _strings(child, (*loc, position), False, out)


_LEAVES = (int, float, type(None))  # values without strings inside (bool is an int)


def secret_names(value: Any) -> set[str]:
    """The name of every ``${vault.NAME}`` inside ``value``."""
    return {
        reference.path
        for _, reference in find_references(value)
        if isinstance(reference, Reference) and reference.kind == "vault"
    }


# ---------------------------------------------------------------------------------------------
# Resolving


def resolve(value: Any, scope: Scope) -> Any:
    """A copy of ``value`` with every reference but ``${vault.NAME}`` replaced by its value.

    Values taken from the scope are shared, not copied: treat the result as read-only.
    """
    return _resolve(value, scope, False)


def _resolve(value: Any, scope: Scope, under_input_key: bool) -> Any:
    if isinstance(value, str):
        return _resolve_string(value, scope, under_input_key)
    if isinstance(value, Mapping):
        return {key: _resolve(child, scope, key in INPUT_KEYS) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [
            _resolve(child, scope, under_input_key and isinstance(child, str)) for child in value
        ]
    return value


def _resolve_string(text: str, scope: Scope, under_input_key: bool) -> Any:
    if under_input_key and _is_bare_reference(text):
        return _evaluate(_analyse(text), scope)
    if "${" not in text:
        return text
    segments = _scan(text)
    parsed: dict[int, _Parsed] = {}
    for position, segment in enumerate(segments):
        if isinstance(segment, _Unclosed):
            raise _unclosed_error(segment.raw)
        if isinstance(segment, _Ref):
            parsed[position] = _analyse(segment.inner)
    keeps_secrets = any(each.refs[0].kind == "vault" for each in parsed.values())
    if len(segments) == 1 and parsed:
        return text if keeps_secrets else _evaluate(parsed[0], scope)

    # A string that keeps a ${vault.NAME} is revealed later, so it stays in the reference
    # language: escapes stay escaped, and interpolated text cannot turn into a reference.
    pieces: list[str] = []
    for position, segment in enumerate(segments):
        if isinstance(segment, _Text):
            pieces.append(segment.text)
        elif isinstance(segment, _Escape):
            pieces.append("$${" if keeps_secrets else "${")
        elif isinstance(segment, _Ref):
            if parsed[position].refs[0].kind == "vault":
                pieces.append(segment.raw)
                continue
            interpolated = _as_text(_evaluate(parsed[position], scope))
            pieces.append(interpolated.replace("${", "$${") if keeps_secrets else interpolated)
    return "".join(pieces)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def _evaluate(parsed: _Parsed, scope: Scope) -> Any:
    reference = parsed.refs[0]
    if reference.expression:
        return _evaluate_expression(parsed, scope)
    if reference.kind in ("item", "index"):
        _require_item(reference, scope)
        if reference.kind == "index":
            return scope.index
        base = scope.item
    elif reference.kind == "vars":
        base = scope.vars
        if parsed.head is not None and not _has_key(base, parsed.head):
            raise _missing_var(reference, parsed.head, scope.vars)
    else:
        base = _task_entry(reference, scope)
        if not reference.path:
            return base.get("output") if isinstance(base, Mapping) else None
    if parsed.compiled is None:
        return base
    if parsed.chain is None:
        return _search(parsed.compiled, base, reference)
    result = _follow(base, parsed.chain)
    if result is None:
        _explain_none(reference, base, parsed.chain)
    return result


def _follow(value: Any, chain: tuple[Step, ...]) -> Any:
    """A plain path (keys and indexes) read as JMESPath reads it — a key of anything that has
    ``get``, an item of a list, None for anything absent — without running its interpreter,
    which costs ~10x more on every reference of a chain of tasks."""
    for step in chain:
        if isinstance(step, str):
            getter = getattr(value, "get", None)
            value = getter(step) if getter is not None else None
        elif isinstance(value, list) and -len(value) <= step < len(value):
            value = value[step]
        else:
            return None
    return value


def _evaluate_expression(parsed: _Parsed, scope: Scope) -> Any:
    context: dict[str, Any] = {}
    for reference in parsed.refs:
        if reference.kind == "task":
            context[reference.root] = _task_entry(reference, scope)
        elif reference.kind == "vars":
            context["vars"] = scope.vars
        else:
            _require_item(reference, scope)
            context["item"], context["index"] = scope.item, scope.index
    assert parsed.compiled is not None
    return _search(parsed.compiled, context, parsed.refs[0])


def _task_entry(reference: Reference, scope: Scope) -> Any:
    if reference.root not in scope.outputs:
        raise ExpressionError(
            f"{_show(reference.text)}: task '{reference.root}' has not finished "
            "(or does not exist)",
            hint=f"add '{reference.root}' to this task's dependencies so it finishes first",
        )
    return scope.outputs[reference.root]


def _require_item(reference: Reference, scope: Scope) -> None:
    if not scope.has_item:
        raise ExpressionError(
            f"{_show(reference.text)}: '{reference.kind}' exists only inside a for_each task",
            hint="add for_each: to this task, or refer to a task's output or vars instead",
        )


def _missing_var(reference: Reference, name: str, defined: Mapping[str, Any]) -> ExpressionError:
    names = [str(key) for key in defined] if isinstance(defined, Mapping) else []
    if not names:
        hint = f"no vars are defined; add '{name}' under vars: or pass --var {name}=VALUE"
    else:
        hint = did_you_mean(name, names) or "vars defined: " + ", ".join(names)
    return ExpressionError(f"{_show(reference.text)}: there is no var '{name}'", hint=hint)


def _search(compiled: ParsedResult, data: Any, reference: Reference) -> Any:
    try:
        return bounded_search(compiled, data)
    except ReferenceTooLarge as error:
        raise ExpressionError(
            f"{_show(reference.text)} is too large: {error}",
            hint="select less (e.g. a slice such as [:100]), or do the work in a "
            "data_processing task",
        ) from None
    except JMESPathError as error:
        problem = _evaluation_problem(error)
    except Exception as error:  # jmespath's functions can fail on unusual values; say so plainly
        problem = f"{type(error).__name__}: {_evaluation_problem(error)}"
    raise ExpressionError(
        f"{_show(reference.text)} could not be evaluated: {problem}",
        hint="check the types the expression works on, e.g. with ${type(...)}",
    )


def _explain_none(reference: Reference, base: Any, chain: tuple[Step, ...]) -> None:
    """Raise when a plain path gave None because a key or item is absent (not because of a null)."""
    current = base
    for position, step in enumerate(chain):
        prefix = _reference_text(reference.root, chain[:position])
        where = f"'{prefix}'"
        if current is None:
            return
        if isinstance(step, str):
            if isinstance(current, Mapping):
                if step not in current:
                    keys = ", ".join(str(key) for key in list(current)[:20])
                    raise ExpressionError(
                        f"{_show(reference.text)} has no key '{step}'",
                        hint=f"keys there: {keys}" if keys else f"{where} is an empty object",
                    )
                current = current[step]
                continue
            if isinstance(current, list):
                raise ExpressionError(
                    f"{_show(reference.text)} reads key '{step}' from a list",
                    hint=f"take it from every item with {_show(f'{prefix}[].{step}')}, "
                    f"or from one with {_show(f'{prefix}[0].{step}')}",
                )
            raise ExpressionError(
                f"{_show(reference.text)} has no key '{step}'",
                hint=f"{where} is {_json_type(current)}, not an object",
            )
        if isinstance(current, list):
            if not -len(current) <= step < len(current):
                raise ExpressionError(
                    f"{_show(reference.text)} has no item [{step}]",
                    hint=f"{where} has {len(current)} item(s)",
                )
            current = current[step]
            continue
        raise ExpressionError(
            f"{_show(reference.text)} has no item [{step}]",
            hint=f"{where} is {_json_type(current)}, not a list",
        )


def _reference_text(root: str, steps: tuple[Step, ...]) -> str:
    path = _format_steps(steps)
    return root + path if not path or path.startswith("[") else f"{root}.{path}"


def _has_key(value: Any, key: str) -> bool:
    return isinstance(value, Mapping) and key in value


def _json_type(value: Any) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


# ---------------------------------------------------------------------------------------------
# Secrets


async def reveal_secrets(
    value: str,
    resolver: SecretResolver,
    *,
    host: str | None,
    allowed: Collection[str] | None = None,
) -> str:
    """Replace each ``${vault.NAME}`` in ``value`` with the secret, for use with ``host`` only.

    ``allowed`` is the set of secrets the task's configuration names in the document: a reference
    that arrived any other way (e.g. inside another task's output) is refused. A string without a
    secret is returned as it is.
    """
    if "${" not in value:
        return value
    segments = _scan(value)
    names = [_secret_name(segment) for segment in segments]
    if not any(names):
        return value
    revealed: dict[str, str] = {}
    pieces: list[str] = []
    for segment, name in zip(segments, names, strict=True):
        if name is not None:
            if allowed is not None and name not in allowed:
                raise TaskError(
                    f"secret '{name}' is not referenced by this task's configuration in the "
                    "document, so it is not revealed (a reference that arrived through another "
                    "task's output is refused)",
                    "config",
                )
            if name not in revealed:
                revealed[name] = await resolver.resolve(name, host=host)
            pieces.append(revealed[name])
        elif isinstance(segment, _Text):
            pieces.append(segment.text)
        elif isinstance(segment, _Escape):
            pieces.append("${")
        else:
            pieces.append(segment.raw)
    return "".join(pieces)


def _secret_name(segment: _Segment) -> str | None:
    if not isinstance(segment, _Ref):
        return None
    try:
        reference = parse_reference(segment.inner)
    except ExpressionError:
        return None
    return reference.path if reference.kind == "vault" else None


# ---------------------------------------------------------------------------------------------
# Formatting


def _show(text: str) -> str:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return f"'${{{shown}}}'"


def _format_steps(steps: tuple[Step, ...]) -> str:
    text = ""
    for step in steps:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            name = step if _JMESPATH_IDENTIFIER.fullmatch(step) else json.dumps(step)
            text += f".{name}" if text else name
    return text


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


def _evaluation_problem(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."
