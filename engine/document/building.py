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
    parse_task,
    task_field_names,
)
from multi_task_orchestrator.engine.document.notify_models import NotifyChannel
from multi_task_orchestrator.engine.issues import Issue, Location, did_you_mean

# --- building models ----------------------------------------------------------------------

# a field no model declares; a task (a dataclass) reports it as an unexpected argument
_UNKNOWN_FIELD = ("extra_forbidden", "unexpected_keyword_argument")


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
        if err["type"] in _UNKNOWN_FIELD:
            name = str(loc[-1])
            message = f"unknown field '{name}'"
            hint = _unknown_field_hint(name, loc[:-1])
        elif err["type"] == "missing":
            message = f"'{loc[-1]}' is required"
        elif err["type"] in ("model_type", "dataclass_type"):  # e.g. ``tasks: [fetch]``
            message = f"expected a mapping of fields, not {type(err['input']).__name__}"
            if len(loc) == 2 and loc[0] == "tasks":
                hint = "a task is a mapping, e.g. {id: fetch, type: http, config: {url: ...}}"
        elif err["type"] == "too_short" and loc == ("tasks",):  # ``tasks: []``
            message = "tasks is empty: an orchestration needs at least one task"
            hint = "e.g. tasks: [{id: fetch, type: http, config: {url: ...}}]"
        elif err["type"] == "list_type" and loc == ("tasks",):  # e.g. ``tasks: {id: a}``
            message = f"tasks must be a list of tasks, not {_kind(err['input'])}"
            hint = "start each task with '- ', e.g. tasks: [{id: fetch, type: http}]"
        elif err["type"] == "string_pattern_mismatch" and _names_a_task(loc):
            message = f"'{err['input']}' is not a valid task id"
            hint = "use letters, digits, _ and - (at most 128), starting with a letter or _"
        issues.append(raw.issue(message, loc, hint))
    return issues


def _kind(value: object) -> str:
    names: dict[type, str] = {dict: "a mapping", str: "text"}
    return names.get(type(value), type(value).__name__)


def _names_a_task(loc: Location) -> bool:
    """A task's id, or a task id in its dependencies (under any spelling)."""
    if loc[:1] != ("tasks",) or len(loc) < 3:
        return False
    return loc[2] == "id" or (loc[2] in DEPENDENCY_SPELLINGS and len(loc) == 4)


def _unknown_field_hint(name: str, parent: Location) -> str:
    if name in DEPENDENCY_SPELLINGS and parent[:1] == ("tasks",):
        return "dependencies, depends_on and needs are one field: use only one of them"
    model: type[BaseModel] = Orchestration
    if parent[:1] == ("tasks",) and "retry" not in parent and "budget" not in parent:
        fields = task_field_names()
        return did_you_mean(name, [*fields, "depends_on", "needs"]) or _allowed(fields)
    if parent and parent[0] == "tasks":
        model = RetryPolicy if "retry" in parent else Budget
    elif parent[:1] == ("budget",):
        model = Budget
    elif parent[:1] == ("on_failure",):
        model = FailurePolicy
    elif parent[:1] == ("limits",):
        model = LimitSpec
    elif parent[:1] == ("notify",):
        model = NotifyChannel
    return did_you_mean(name, list(model.model_fields)) or _allowed(list(model.model_fields))


def _allowed(fields: list[str]) -> str:
    return f"allowed fields: {', '.join(fields)}"


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
                tasks.append(parse_task(item))
            except ValidationError:
                continue
    return None, tasks, issues


def raw_task_ids(raw: RawDocument) -> list[str]:
    """Every string id in the raw document, valid task or not (to avoid cascading errors)."""
    raw_tasks = raw.data.get("tasks") if isinstance(raw.data, dict) else None
    if not isinstance(raw_tasks, list):
        return []
    return [t["id"] for t in raw_tasks if isinstance(t, dict) and isinstance(t.get("id"), str)]
