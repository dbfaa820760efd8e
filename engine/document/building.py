"""Building the pydantic models from a loaded document, with every problem as an ``Issue``
(line, column and fix hint) rather than pydantic's raw errors."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ValidationError,
)

from multi_task_orchestrator.engine.document.loader import RawDocument
from multi_task_orchestrator.engine.document.models import (
    DEPENDENCY_SPELLINGS,
    Budget,
    FailurePolicy,
    LimitSpec,
    Orchestration,
    RetryPolicy,
    TaskSpec,
)
from multi_task_orchestrator.engine.document.notify_models import NotifyChannel
from multi_task_orchestrator.engine.issues import Issue, Location, did_you_mean

# --- building models ----------------------------------------------------------------------


def issues_from_validation(
    error: ValidationError, raw: RawDocument, prefix: Location = ()
) -> list[Issue]:
    """Turn pydantic's errors into Issues with positions and hints."""
    issues = []
    for err in error.errors(include_url=False):
        loc: Location = (*prefix, *err["loc"])
        ctx = err.get("ctx") or {}
        hint = ctx.get("hint")
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            name = str(loc[-1])
            message = f"unknown field '{name}'"
            hint = _unknown_field_hint(name, loc[:-1])
        elif err["type"] == "missing":
            message = f"'{loc[-1]}' is required"
        issues.append(raw.issue(message, loc, hint))
    return issues


def _unknown_field_hint(name: str, parent: Location) -> str:
    if name in DEPENDENCY_SPELLINGS and parent[:1] == ("tasks",):
        return "dependencies, depends_on and needs are one field: use only one of them"
    model: type[BaseModel] = Orchestration
    if parent and parent[0] == "tasks":
        model = TaskSpec
        if "retry" in parent:
            model = RetryPolicy
        elif "budget" in parent:
            model = Budget
    elif parent[:1] == ("budget",):
        model = Budget
    elif parent[:1] == ("on_failure",):
        model = FailurePolicy
    elif parent[:1] == ("limits",):
        model = LimitSpec
    elif parent[:1] == ("notify",):
        model = NotifyChannel
    names = list(model.model_fields)
    if model is TaskSpec:
        names += ["depends_on", "needs"]
    return did_you_mean(name, names) or f"allowed fields: {', '.join(model.model_fields)}"


def build(raw: RawDocument) -> tuple[Orchestration | None, list[TaskSpec], list[Issue]]:
    """Validate a raw document into models.

    Returns the orchestration (None if anything failed), the tasks that are individually valid
    (so the checks of the tasks together can still run on them), and every issue found.
    """
    try:
        orchestration = Orchestration.model_validate(raw.data)
    except ValidationError as exc:
        issues = issues_from_validation(exc, raw)
    else:
        return orchestration, list(orchestration.tasks), []
    tasks: list[TaskSpec] = []
    raw_tasks = raw.data.get("tasks")
    if isinstance(raw_tasks, list):
        for item in raw_tasks:
            try:
                tasks.append(TaskSpec.model_validate(item))
            except ValidationError:
                continue
    return None, tasks, issues


def raw_task_ids(raw: RawDocument) -> list[str]:
    """Every string id in the raw document, valid task or not (to avoid cascading errors)."""
    raw_tasks = raw.data.get("tasks") if isinstance(raw.data, dict) else None
    if not isinstance(raw_tasks, list):
        return []
    return [t["id"] for t in raw_tasks if isinstance(t, dict) and isinstance(t.get("id"), str)]
