"""Checking a document against one machine's runners: its errors and warnings, its plan, and
what this machine lacks to run it. ``Engine.validate`` asks its ``DocumentChecker``; the
``orchestrator validate`` command makes one alone (``DocumentChecker.open``), so checking a
file opens no state database and imports none of the engine's run machinery."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from multi_task_orchestrator.engine import registry
from multi_task_orchestrator.engine.document.loader import MAX_DOCUMENT_BYTES, RawDocument
from multi_task_orchestrator.engine.document.models import Orchestration
from multi_task_orchestrator.engine.document.validation import Validation, validate
from multi_task_orchestrator.engine.runner_set import RunnerSet
from multi_task_orchestrator.engine.secrets import NoVault, SecretResolver, names_to_check

Source = str | Path | Mapping[str, Any] | RawDocument | Orchestration  # what validate takes


class DocumentChecker:
    """Checks documents against ``runners``, the secrets ``secrets`` holds and the limits."""

    def __init__(
        self,
        runners: RunnerSet,
        secrets: SecretResolver,
        *,
        max_tasks: int,
        max_document_bytes: int,
        resources: Mapping[str, Any],
    ) -> None:
        self.runners = runners
        self.secrets = secrets
        self.max_tasks = max_tasks
        self.max_document_bytes = max_document_bytes
        self.resources = resources

    @classmethod
    def open(
        cls,
        *,
        runner_settings: Mapping[str, BaseModel | Mapping[str, Any]] | None = None,
        secrets: SecretResolver | None = None,
        max_tasks: int,
        max_document_bytes: int = MAX_DOCUMENT_BYTES,
    ) -> DocumentChecker:
        """A checker with the registry's runners made with ``runner_settings``, as an engine
        with the same options has (close it with ``aclose``)."""
        return cls(
            RunnerSet(registry.runner_classes(), runner_settings or {}),
            secrets or NoVault(),
            max_tasks=max_tasks,
            max_document_bytes=max_document_bytes,
            resources={},
        )

    def validate(
        self,
        source: Source,
        *,
        extra_vars: Mapping[str, Any] | None = None,
        require_runners: bool = False,
    ) -> Validation:
        """Check a document against these runners; never raises for bad input."""
        if isinstance(source, Orchestration):
            source = RawDocument(source.model_dump(mode="json", exclude_none=True))
        return validate(
            source,
            extra_vars=extra_vars,
            available_types=self.runners.types,
            require_runners=require_runners,
            runner_configs=self.runners.configs,
            secret_names=functools.partial(names_to_check, self.secrets),
            secret_fields=self.runners.secret_fields,
            disabled_types=self.runners.disabled,
            max_document_bytes=self.max_document_bytes,
            max_tasks=self.max_tasks,
        )

    async def machine_warnings(self, validation: Validation) -> None:
        """Add to a valid document's issues a warning for each task type it uses that this
        machine cannot run now (no browser, say): the machine's problem, not the document's."""
        await self.runners.machine_warnings(validation, self.resources)

    async def aclose(self) -> None:
        """Release what the runners made for checking hold (an engine closes its own)."""
        await self.runners.aclose()
