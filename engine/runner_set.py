"""One engine's runners: an instance of each task type, made with its settings; the types their
settings leave off (opt-in ones such as ``shell``) set aside with how to switch them on; what
checking a document needs to know of them; and what keeps this machine from running them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from multi_task_orchestrator.engine.document.validation import Validation
from multi_task_orchestrator.engine.issues import Issue
from multi_task_orchestrator.engine.runners.base import Runner


class RunnerSet:
    """The runners of the task types ``types`` names, each made with its entry in ``settings``
    (by task type; a type not named gets its defaults)."""

    def __init__(
        self,
        types: Mapping[str, type[Runner]],
        settings: Mapping[str, BaseModel | Mapping[str, Any]],
    ) -> None:
        runners = {
            name: cls(settings[name]) if name in settings else cls() for name, cls in types.items()
        }
        # opt-in types (e.g. shell) their settings leave off, with how to switch them on
        self.disabled: dict[str, str] = {
            name: runner.opt_in or "its settings leave it off"
            for name, runner in runners.items()
            if not runner.enabled()
        }
        self._runners = {n: r for n, r in runners.items() if n not in self.disabled}
        for runner in self._runners.values():
            runner.use_runners(self._runners)

    def get(self, type_name: str) -> Runner:
        return self._runners[type_name]

    def all(self) -> dict[str, Runner]:
        return dict(self._runners)

    @property
    def types(self) -> set[str]:
        return set(self._runners)

    @property
    def secret_fields(self) -> dict[str, frozenset[str]]:
        """Per task type, the config fields whose ``${vault.NAME}`` its runner reveals."""
        return {name: runner.secret_fields for name, runner in self._runners.items()}

    @property
    def configs(self) -> dict[str, type[BaseModel]]:
        return {name: runner.config_model for name, runner in self._runners.items()}

    async def machine_warnings(self, validation: Validation, resources: Mapping[str, Any]) -> None:
        """Add to a valid document's issues a warning for each task type it uses that this
        machine cannot run now (no browser, say): the machine's problem, not the document's."""
        orchestration = validation.orchestration
        if orchestration is None:
            return
        first: dict[str, int] = {}
        for index, task in enumerate(orchestration.tasks):
            first.setdefault(task.type, index)
        for type_name, index in first.items():
            runner = self._runners.get(type_name)
            problem = await runner.machine_problem(resources) if runner else None
            if problem:
                validation.issues.append(
                    Issue(
                        f"{type_name} tasks will fail on this machine: {problem}",
                        ("tasks", index, "type"),
                        severity="warning",
                    )
                )

    async def aclose(self) -> None:
        for runner in self._runners.values():
            await runner.aclose()
