"""References resolved against a ``Scope``: a string that is one reference takes the value's
type, a longer one is interpolated; ``${vault.NAME}`` stays for the runner to reveal. Every
failure is explained: a task not finished, a var or key or item absent, a value too large."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from multi_task_orchestrator.engine.expression_budget import ReferenceTooLarge, bounded_search
from multi_task_orchestrator.engine.expressions.model import (
    INPUT_KEYS,
    ExpressionError,
    Reference,
    Scope,
    Step,
    format_steps,
    show,
)
from multi_task_orchestrator.engine.expressions.parsing import Parsed, analyse
from multi_task_orchestrator.engine.expressions.scanning import (
    Escape,
    Ref,
    Text,
    Unclosed,
    is_bare_reference,
    scan,
    unclosed_error,
)
from multi_task_orchestrator.engine.issues import did_you_mean


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
    if under_input_key and is_bare_reference(text):
        return _evaluate(analyse(text), scope)
    if "${" not in text:
        return text
    segments = scan(text)
    parsed: dict[int, Parsed] = {}
    for position, segment in enumerate(segments):
        if isinstance(segment, Unclosed):
            raise unclosed_error(segment.raw)
        if isinstance(segment, Ref):
            parsed[position] = analyse(segment.inner)
    keeps_secrets = any(each.refs[0].kind == "vault" for each in parsed.values())
    if len(segments) == 1 and parsed:
        return text if keeps_secrets else _evaluate(parsed[0], scope)

    # A string that keeps a ${vault.NAME} is revealed later, so it stays in the reference
    # language: escapes stay escaped, and interpolated text cannot turn into a reference.
    pieces: list[str] = []
    for position, segment in enumerate(segments):
        if isinstance(segment, Text):
            pieces.append(segment.text)
        elif isinstance(segment, Escape):
            pieces.append("$${" if keeps_secrets else "${")
        elif isinstance(segment, Ref):
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


def _evaluate(parsed: Parsed, scope: Scope) -> Any:
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


def _evaluate_expression(parsed: Parsed, scope: Scope) -> Any:
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
            f"{show(reference.text)}: task '{reference.root}' has not finished (or does not exist)",
            hint=f"add '{reference.root}' to this task's dependencies so it finishes first",
        )
    return scope.outputs[reference.root]


def _require_item(reference: Reference, scope: Scope) -> None:
    if not scope.has_item:
        raise ExpressionError(
            f"{show(reference.text)}: '{reference.kind}' exists only inside a for_each task",
            hint="add for_each: to this task, or refer to a task's output or vars instead",
        )


def _missing_var(reference: Reference, name: str, defined: Mapping[str, Any]) -> ExpressionError:
    names = [str(key) for key in defined] if isinstance(defined, Mapping) else []
    if not names:
        hint = f"no vars are defined; add '{name}' under vars: or pass --var {name}=VALUE"
    else:
        hint = did_you_mean(name, names) or "vars defined: " + ", ".join(names)
    return ExpressionError(f"{show(reference.text)}: there is no var '{name}'", hint=hint)


def _search(compiled: ParsedResult, data: Any, reference: Reference) -> Any:
    try:
        return bounded_search(compiled, data)
    except ReferenceTooLarge as error:
        raise ExpressionError(
            f"{show(reference.text)} is too large: {error}",
            hint="select less (e.g. a slice such as [:100]), or do the work in a "
            "data_processing task",
        ) from None
    except JMESPathError as error:
        problem = _evaluation_problem(error)
    except Exception as error:  # jmespath's functions can fail on unusual values; say so plainly
        problem = f"{type(error).__name__}: {_evaluation_problem(error)}"
    raise ExpressionError(
        f"{show(reference.text)} could not be evaluated: {problem}",
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
                        f"{show(reference.text)} has no key '{step}'",
                        hint=f"keys there: {keys}" if keys else f"{where} is an empty object",
                    )
                current = current[step]
                continue
            if isinstance(current, list):
                raise ExpressionError(
                    f"{show(reference.text)} reads key '{step}' from a list",
                    hint=f"take it from every item with {show(f'{prefix}[].{step}')}, "
                    f"or from one with {show(f'{prefix}[0].{step}')}",
                )
            raise ExpressionError(
                f"{show(reference.text)} has no key '{step}'",
                hint=f"{where} is {_json_type(current)}, not an object",
            )
        if isinstance(current, list):
            if not -len(current) <= step < len(current):
                raise ExpressionError(
                    f"{show(reference.text)} has no item [{step}]",
                    hint=f"{where} has {len(current)} item(s)",
                )
            current = current[step]
            continue
        raise ExpressionError(
            f"{show(reference.text)} has no item [{step}]",
            hint=f"{where} is {_json_type(current)}, not a list",
        )


def _reference_text(root: str, steps: tuple[Step, ...]) -> str:
    path = format_steps(steps)
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


def _evaluation_problem(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."
