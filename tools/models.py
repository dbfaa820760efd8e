"""The typed results of the MCP tools (each gives the tool an ``outputSchema``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from multi_task_orchestrator.vault.store import SecretInfo

DEFAULT_RESULT_CHARS = 20_000  # get_results' default size bound


def _types_not_any_of(schema: dict[str, Any]) -> None:
    """Write each optional field as ``{"type": ["string", "null"]}`` rather than an ``anyOf``
    of two schemas: the same meaning, and clients check every reply against the schema —
    for the rows of a status, about twice as fast."""
    for field_schema in schema.get("properties", {}).values():
        choices = field_schema.get("anyOf")
        if choices and all(choice.keys() == {"type"} for choice in choices):
            del field_schema["anyOf"]
            field_schema["type"] = [choice["type"] for choice in choices]


class Problem(BaseModel):
    """One problem in a document."""

    message: str
    path: str = Field(description="where in the document, e.g. tasks[2].dependencies[0]")
    line: int | None = None
    column: int | None = None
    hint: str | None = Field(None, description="how to fix it")


class LimitInfo(BaseModel):
    concurrency: int | None = None
    rate: str | None = None
    tasks: list[str] = Field(default_factory=list)


class PlanInfo(BaseModel):
    """How a valid document will run. A large plan is shown in part: the lists stop at
    PLAN_LIST_LIMIT entries, and ``left_out`` says what is missing."""

    mode: str
    task_count: int
    max_concurrent: int
    stage_count: int = Field(description="how many stages the plan has")
    stages: list[list[str]] = Field(description="task ids per stage, in order")
    critical_path_length: int = Field(description="how many tasks the longest chain has")
    critical_path: list[str] = Field(
        description="the longest chain of dependencies (its start and end when it is long)"
    )
    limits: dict[str, LimitInfo] = Field(default_factory=dict)
    fan_outs: list[str] = Field(default_factory=list, description="tasks with for_each")
    description: str = Field(description="the plan in words")
    left_out: str | None = Field(
        default=None, description="what this answer leaves out of a large plan, and where it is"
    )


class ValidationReport(BaseModel):
    ok: bool = Field(description="true when the document can be submitted")
    errors: list[Problem] = Field(default_factory=list)
    warnings: list[Problem] = Field(default_factory=list)
    plan: PlanInfo | None = None


class ApprovalInfo(BaseModel):
    """An approval task's request and, once made, the decision on it."""

    message: str = Field(description="what the person is asked")
    waiting: bool = Field(description="true while nobody has decided")
    requested_at: str
    deadline: str | None = Field(None, description="when its timeout decides; null: never")
    decision: str | None = Field(None, description="approved or rejected")
    note: str | None = None
    decided_by: str | None = Field(None, description="mcp, cli, api or timeout")
    decided_at: str | None = None


class ApprovalDecision(BaseModel):
    """A decision recorded on an approval task; the task goes on (or fails) at once."""

    id: str = Field(description="the orchestration id")
    task_id: str
    decision: str = Field(description="approved or rejected")
    note: str | None = None
    decided_by: str
    decided_at: str
    next_step: str = Field(description="what to call next")


class TaskStatus(BaseModel):
    """One task (or fan-out child, e.g. publish_all[2]) of an orchestration."""

    model_config = ConfigDict(json_schema_extra=_types_not_any_of)

    id: str
    name: str
    type: str
    state: str = Field(
        description="pending, queued, running, retrying, succeeded, failed, skipped or cancelled"
    )
    parent: str | None = Field(None, description="the fan-out task this child belongs to")
    attempts: int
    max_attempts: int
    duration_seconds: float | None = None
    error: str | None = None
    error_class: str | None = None
    reason: str | None = Field(None, description="why it was skipped or cancelled")
    waiting_for: str | None = Field(None, description="what a queued task waits for")
    # written in place (the rows' schema is inlined into the status's, see below)
    approval: Annotated[
        ApprovalInfo | None,
        WithJsonSchema({"anyOf": [ApprovalInfo.model_json_schema(), {"type": "null"}]}),
    ] = Field(
        None,
        description="an approval task's request and decision (left out for other tasks)",
        exclude_if=lambda value: value is None,
    )


class UsageInfo(BaseModel):
    """What a run's model calls used, every attempt counted (retried ones too)."""

    input_tokens: int
    output_tokens: int
    cost_usd: float | None = Field(description="US dollars; null when no model had a price")
    calls: int = Field(description="model calls made")
    unpriced_calls: int = Field(description="calls whose model has no price (not in cost_usd)")
    text: str = Field(description="e.g. '182k in / 41k out · $1.37'")


class BudgetAmount(BaseModel):
    used: float
    limit: float


class BudgetInfo(BaseModel):
    """The orchestration's budget: once a limit is reached, model steps stop starting."""

    tokens: BudgetAmount | None = Field(None, description="input and output tokens")
    cost_usd: BudgetAmount | None = Field(None, description="US dollars")
    spent: bool = Field(description="true once a limit is reached")
    text: str = Field(description="e.g. 'budget: 48,210 of 50,000 tokens used'")


def _absent(value: Any) -> bool:
    return value is None


class OrchestrationStatus(BaseModel):
    """Where an orchestration stands."""

    id: str
    name: str
    status: str = Field(description="running, succeeded, failed or cancelled")
    finished: bool
    percent: float
    done: int
    total: int
    counts: dict[str, int] = Field(
        description="tasks per state (a fan-out whose items run is running, as they are)"
    )
    elapsed_seconds: float
    max_parallel: int = Field(description="the most tasks that ran at once")
    error: str | None = None
    display: str = Field(description="the progress bar and task tree, ready to show a user")
    # the rows' schema written in place, not as a $ref a client resolves for every row
    tasks: Annotated[
        list[TaskStatus],
        WithJsonSchema({"type": "array", "items": TaskStatus.model_json_schema()}),
    ]
    tasks_omitted: int = Field(0, description="rows left out to keep the answer short")
    usage: UsageInfo | None = Field(
        None,
        description="what the model steps used (left out for a run without model steps)",
        exclude_if=_absent,
    )
    budget: BudgetInfo | None = Field(
        None, description="the orchestration's budget, when it has one", exclude_if=_absent
    )
    next_step: str = Field(description="what to call next")
    wait_note: str | None = Field(
        None,
        description="when the wait asked for was cut short by this server's cap, and which",
        exclude_if=_absent,
    )


class Submission(BaseModel):
    id: str = Field(description="the orchestration id for every other tool")
    status: str
    task_count: int
    existing: bool = Field(False, description="true when idempotency_key matched an earlier run")
    plan: PlanInfo
    warnings: list[Problem] = Field(
        default_factory=list,
        description="the document's warnings, as validate_orchestration gives them",
    )
    progress: OrchestrationStatus | None = Field(
        None, description="the status reached, when wait_seconds was given"
    )
    next_step: str


class Failure(BaseModel):
    task: str
    state: str
    error: str | None = None
    error_class: str | None = None
    reason: str | None = None
    chain: list[str] = Field(default_factory=list, description="from this task to the root cause")


class Artifact(BaseModel):
    name: str
    uri: str = Field(description="read it with resources/read")
    mime_type: str
    size: int


class OutputPart(BaseModel):
    """The part of one output an answer shows, when the output is too large for one answer."""

    task: str = Field(description='whose output ("query": the query\'s result)')
    kind: Literal["items", "keys", "characters"] = Field(
        description="what the output is cut into: a list's items, an object's keys, a text's "
        "characters"
    )
    start: int
    end: int = Field(description="the part is [start, end) of total")
    total: int
    too_large: list[int] = Field(
        default_factory=list,
        description="positions left out because each alone is larger than max_chars",
    )


class Results(BaseModel):
    id: str
    name: str
    status: str
    summary: str = Field(description="the summary report")
    outputs: dict[str, Any] = Field(
        description="task id -> output, for finished tasks (empty when a query was given)"
    )
    query_result: Any = Field(None, description="what the query picked (when one was given)")
    part: OutputPart | None = Field(
        None, description="set when one output (or the query result) is shown in part"
    )
    failures: list[Failure] = Field(
        default_factory=list, description="failed tasks first when some are left out"
    )
    failures_omitted: int = Field(0, description="failures left out to keep the answer short")
    artifacts: list[Artifact] = Field(default_factory=list)
    usage: UsageInfo | None = Field(
        None,
        description="the model steps' totals (left out for a run without model steps)",
        exclude_if=_absent,
    )
    budget: BudgetInfo | None = Field(
        None, description="the orchestration's budget, when it has one", exclude_if=_absent
    )
    truncated: bool = Field(False, description="true when this answer leaves something out")
    next_offset: int | None = Field(None, description="pass as offset to get the next page")
    next_item_offset: int | None = Field(
        None, description="pass as item_offset with next_offset, to go on inside an output"
    )
    next_call: str | None = Field(None, description="the exact call that gets the next page")
    note: str | None = Field(None, description="what this answer leaves out, and how to get it")
    results_uri: str = Field(description="the full results as a resource")


class OrchestrationSummary(BaseModel):
    id: str
    name: str
    status: str
    created_at: str
    finished_at: str | None = None
    source: str | None = None


class OrchestrationList(BaseModel):
    orchestrations: list[OrchestrationSummary]


class TaskTypeInfo(BaseModel):
    type: str
    aliases: list[str] | None = Field(None, description="other names for it, when it has any")
    available: bool = Field(description="false when this server cannot run it")
    summary: str
    required: list[str] | None = Field(None, description="the config fields it requires")
    optional: list[str] | None = Field(None, description="the other config fields it takes")
    example: dict[str, Any] | None = None
    config_schema: dict[str, Any] | None = Field(
        None, description="its config JSON Schema (when asked for with type=...)"
    )


class TaskTypeList(BaseModel):
    task_types: list[TaskTypeInfo]
    document_schema_hint: str
    detail: str | None = Field(None, description="how to get one type's full config schema")


# --- other MCP servers (the mcp task type) ----------------------------------------------------


class McpToolInfo(BaseModel):
    """One tool of a configured MCP server, as an mcp task calls it."""

    name: str
    description: str = Field(description="the first line of the tool's description")
    arguments: list[str] = Field(description="the names of its arguments")
    required: list[str] = Field(description="the arguments it requires")


class McpServerInfo(BaseModel):
    """One server of the servers file, with its tools or why they could not be listed."""

    name: str = Field(description="the name an mcp task's config.server gives")
    transport: str = Field(description="stdio (a local process) or http (streamable HTTP)")
    target: str = Field(description="the command it runs, or its URL")
    tools: list[McpToolInfo] = Field(default_factory=list)
    tools_omitted: int = Field(0, description="tools left out to keep the answer short")
    error: str | None = Field(None, description="why its tools could not be listed")


class McpToolList(BaseModel):
    servers: list[McpServerInfo]
    servers_file: str | None = Field(
        None, description="the servers file (ORCHESTRATOR_MCP_SERVERS), when one is set"
    )
    note: str | None = None
    usage: str = Field(description="how a document calls one of these tools")


# --- vault ------------------------------------------------------------------------------------


class StoredSecret(BaseModel):
    """A secret was stored; what may be shown of it (never the value)."""

    secret: SecretInfo
    usage: str = Field(description="how to use it in a document")


class SecretList(BaseModel):
    secrets: list[SecretInfo] = Field(description="by name; values are never shown")


class DeletedSecret(BaseModel):
    deleted: str = Field(description="the name of the secret that was deleted")
