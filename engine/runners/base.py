"""The runner interface: a config model per task type and one coroutine that does the work.

A runner never sees the scheduler. It gets its validated config and a ``RunContext`` that offers
a logger (lands in the event log), the run's artifacts folder, the secret resolver, and the means
to fail with an error class and a requested retry delay.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.expressions import reveal_secrets
from multi_task_orchestrator.engine.network import Network
from multi_task_orchestrator.engine.secrets import SecretResolver

ConfigT = TypeVar("ConfigT", bound=BaseModel)


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

    def waiting(self, what: str | None) -> None:
        """Show in the status what the task waits for (``None`` when it stops waiting)."""
        if self.on_wait is not None:
            self.on_wait(what)

    def log(self, message: str, level: str = "info", **data: Any) -> None:
        """Write a line to the orchestration's event log."""
        self.log_sink(level, message, data or None)

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
    # Where the type stands in listings and messages (lower first; ties by name).
    listing_rank: ClassVar[int] = 1000

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

    async def machine_problem(self, resources: Mapping[str, Any]) -> str | None:
        """What this machine lacks to run tasks of this type, with the fix (e.g. no browser);
        None when nothing. ``resources`` are the engine's. Validation shows it as a warning."""
        return None

    async def aclose(self) -> None:
        """Release what the runner holds (clients, browsers) when the engine stops."""
