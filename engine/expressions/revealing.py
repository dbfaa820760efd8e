"""Secrets revealed: each ``${vault.NAME}`` in a string replaced by its value, for one host,
and only if the task's configuration names it in the document."""

from __future__ import annotations

from collections.abc import Collection

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.expressions.model import ExpressionError
from multi_task_orchestrator.engine.expressions.parsing import parse_reference
from multi_task_orchestrator.engine.expressions.scanning import Escape, Ref, Segment, Text, scan
from multi_task_orchestrator.engine.secrets import SecretResolver


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
    segments = scan(value)
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
        elif isinstance(segment, Text):
            pieces.append(segment.text)
        elif isinstance(segment, Escape):
            pieces.append("${")
        else:
            pieces.append(segment.raw)
    return "".join(pieces)


def _secret_name(segment: Segment) -> str | None:
    if not isinstance(segment, Ref):
        return None
    try:
        reference = parse_reference(segment.inner)
    except ExpressionError:
        return None
    return reference.path if reference.kind == "vault" else None
