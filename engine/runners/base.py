"""The runner interface: a config model per task type and one coroutine that does the work.

A runner never sees the scheduler. It gets its validated config and a ``RunContext`` that offers
a logger (lands in the event log), the run's artifacts folder, the secret resolver, and the means
to fail with an error class and a requested retry delay. A runner that calls models declares
``spends_budget`` and reports each call's usage with ``ctx.record_usage``; ``ctx.budget_left()``
says what the budgets over the task leave it, so a loop can stop mid-task.

A runner may declare a settings model (``settings_model``): a pydantic model whose fields have
defaults and descriptions. The server reads each field from the environment variable
``ORCHESTRATOR_<TYPE>_<FIELD>`` (or the name the field gives as
``json_schema_extra={"env": "ORCHESTRATOR_..."}``), lists it in the README's configuration
table, and the engine (and each Dask worker) hands the runner the object as ``self.settings``.
A field with ``exclude=True`` is not a setting: it is set in code only and never shipped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.expressions import reveal_secrets
from multi_task_orchestrator.engine.network import Network
from multi_task_orchestrator.engine.secrets import SecretResolver
from multi_task_orchestrator.engine.usage import BudgetLeft, UsageRecord

if TYPE_CHECKING:  # the desk is the engine's; a runner only calls it
    from multi_task_orchestrator.engine.approvals import ApprovalDesk

ConfigT = TypeVar("ConfigT", bound=BaseModel)
SettingsT = TypeVar("SettingsT", bound=BaseModel)


class RunnerConfig(BaseModel):
    """Base for runner configs: unknown keys are errors, so typos surface at validation."""

    model_config = ConfigDict(extra="forbid")


@dataclass(slots=True)
class RunContext:
    """What a runner may use while it runs one attempt of one task."""

    orchestration_id: str
    task_id: str
    attempt: int
    run_dir: Path
    secrets: SecretResolver
    log_sink: Callable[[str, str, dict[str, Any] | None], None]
    resources: dict[str, Any] = field(default_factory=dict)
    secret_names: frozenset[str] | None = None  # the secrets the task's config names; None: any
    network: Network = field(default_factory=Network)
    workspace: Path | None = None  # the folder file_processing may read and write
    item: Any = None  # the fan-out item this attempt works on (for_each or the runner's own)
    index: int | None = None
    on_wait: Callable[[str | None], None] | None = None
    usage_sink: Callable[[UsageRecord], None] | None = None  # where record_usage goes
    budget_probe: Callable[[], BudgetLeft | None] | None = None  # what budget_left asks
    approvals: ApprovalDesk | None = None  # where an approval task waits for a person

    def waiting(self, what: str | None) -> None:
        """Show in the status what the task waits for (``None`` when it stops waiting)."""
        if self.on_wait is not None:
            self.on_wait(what)

    def log(self, message: str, level: str = "info", **data: Any) -> None:
        """Write a line to the orchestration's event log."""
        self.log_sink(level, message, data or None)

    def record_usage(
        self,
        *,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float | None = None,
        model: str | None = None,
    ) -> None:
        """Count a model call's tokens (and its cost in US dollars; None when the model has no
        price) against the attempt, the task and the run: call it once per call, as it is made,
        so that a call of an attempt that fails later still counts."""
        if self.usage_sink is None:
            return
        cost = None if cost_usd is None else max(0.0, float(cost_usd))
        self.usage_sink(
            UsageRecord(max(0, int(input_tokens)), max(0, int(output_tokens)), cost, model)
        )

    def budget_left(self) -> BudgetLeft | None:
        """What the budgets over this task leave it (``.tokens``, ``.cost_usd``, ``.spent``,
        ``.stop_message()``); None when no budget applies."""
        if self.budget_probe is None:
            return None
        return self.budget_probe()

    @property
    def artifacts_dir(self) -> Path:
        """The folder for this run's files (screenshots, downloads); created on first use."""
        path = self.run_dir / "artifacts"
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def reveal(self, value: str, *, host: str | None) -> str:
        """Replace ``${vault.NAME}`` references in ``value`` with secrets allowed for ``host``."""
        return await reveal_secrets(value, self.secrets, host=host, allowed=self.secret_names)

    def fail(
        self, message: str, error_class: str = "error", retry_after: float | None = None
    ) -> TaskError:
        """An error to raise: ``raise ctx.fail("rate limited", "http_429", retry_after=2)``."""
        return TaskError(message, error_class, retry_after=retry_after)


class Runner(ABC, Generic[ConfigT]):
    """One task type. Subclasses set the class attributes and implement ``run``."""

    type_name: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    summary: ClassVar[str]
    example: ClassVar[dict[str, Any]]
    # The config fields (as documents write them) whose ``${vault.NAME}`` the runner reveals at
    # the moment of use; validation refuses a secret anywhere else. Empty: never reveals one.
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    # Other names documents may use for this type (case is ignored).
    aliases: ClassVar[tuple[str, ...]] = ()
    # An opt-in type is refused unless the engine is told to enable it; the text says how
    # (e.g. "set ORCHESTRATOR_ALLOW_SHELL=1 to allow it"). None: always available.
    opt_in: ClassVar[str | None] = None
    # Error classes this runner fails with beyond the built-in ones; ``retry.on`` accepts them.
    error_classes: ClassVar[frozenset[str]] = frozenset()
    # Of those, the ones a ``retry`` without ``on`` retries, as it retries ``http_5xx``.
    retried_by_default: ClassVar[frozenset[str]] = frozenset()
    # Whether its attempts call models: budgets stop them from starting once spent, and it
    # reports each call with ``ctx.record_usage``.
    spends_budget: ClassVar[bool] = False
    # Where the type stands in listings and messages (lower first; ties by name).
    listing_rank: ClassVar[int] = 1000
    # The runner's settings (see the module docstring); None: it has none. Runners that share
    # a model (http and multi_publish) share its environment variables.
    settings_model: ClassVar[type[BaseModel] | None] = None
    # Whether a running attempt holds a slot of the pools over the task (server-wide,
    # orchestration max_concurrent, named limits). A task that only waits (for a person) for
    # hours says False: it is started at once and keeps nobody else from running.
    holds_slot: ClassVar[bool] = True
    # Whether its attempts run in the engine's process whatever the backend (Dask included):
    # a runner that waits on the engine's own services (the approval desk) or uses what lives
    # only in the server (the MCP servers of its servers file and their sessions) says True.
    runs_in_engine: ClassVar[bool] = False

    def __init__(self, settings: BaseModel | Mapping[str, Any] | None = None) -> None:
        """A runner of a type with a settings model gets its settings here: a subclass that
        defines ``__init__`` takes ``settings`` and passes it on."""
        self.settings: BaseModel | None = self.make_settings(settings)

    @classmethod
    def make_settings(cls, given: BaseModel | Mapping[str, Any] | None) -> BaseModel | None:
        """``given`` as this runner's settings: the model's defaults for None, a mapping (or
        another model) validated by the model; ValidationError if it does not fit."""
        model = cls.settings_model
        if model is None:
            if given:
                raise TypeError(f"the {cls.type_name} runner declares no settings_model")
            return None
        if isinstance(given, model):
            return given
        values = given.model_dump() if isinstance(given, BaseModel) else dict(given or {})
        return model.model_validate(values, by_name=True)

    def settings_as(self, model: type[SettingsT]) -> SettingsT:
        """This runner's settings, typed: ``self.settings_as(HttpSettings).max_response_bytes``."""
        if not isinstance(self.settings, model):
            raise TypeError(f"the {self.type_name} runner's settings are not {model.__name__}")
        return self.settings

    def enabled(self) -> bool:
        """Whether documents may use this type now. An opt-in type (``opt_in``) is off unless
        it says otherwise from its settings (``shell``: ``ORCHESTRATOR_ALLOW_SHELL``)."""
        return self.opt_in is None

    def parse_config(self, config: dict[str, Any]) -> ConfigT:
        return self.config_model.model_validate(config)  # type: ignore[return-value]

    def fan_out(self, config: ConfigT) -> list[Any] | None:
        """Items to run as one tracked child each (e.g. publishing destinations), or None.

        Each child runs ``run`` with the same config and its item in ``ctx.item``; the task's
        output is the list of the children's outputs.
        """
        return None

    @abstractmethod
    async def run(self, config: ConfigT, ctx: RunContext) -> Any:
        """Do one attempt; return a JSON-able output or raise (TaskError for a classed error)."""

    def use_runners(self, runners: Mapping[str, Runner[Any]]) -> None:
        """Called once the engine has made all its runners (by task type), so a runner can use
        what another one holds for the engine's life (the ``agent`` runner calls tools through
        the ``mcp`` runner's sessions) rather than open its own. Does nothing by default."""

    async def machine_problem(self, resources: Mapping[str, Any]) -> str | None:
        """What this machine lacks to run tasks of this type, with the fix (e.g. no browser);
        None when nothing. ``resources`` are the engine's. Validation shows it as a warning."""
        return None

    async def aclose(self) -> None:
        """Release what the runner holds (clients, browsers) when the engine stops."""
