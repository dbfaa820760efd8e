"""What a task whose config cannot be used says: one line naming the problem."""

from __future__ import annotations

from pydantic import ValidationError

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.expressions import ExpressionError


def config_problem(error: Exception) -> str:
    """One line saying why a task's config cannot be used."""
    if isinstance(error, ExpressionError):
        return f"{error.message} ({error.hint})" if error.hint else error.message
    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in error.errors(include_url=False)
        )
        return f"invalid config: {problems}"
    if isinstance(error, TaskError):
        return error.message
    return str(error)
