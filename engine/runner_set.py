"""One engine's runners: an instance of each task type, made with its settings; the types their
settings leave off (opt-in ones such as ``shell``) set aside with how to switch them on; what
checking a document needs to know of them; and what keeps this machine from running them.

A runner is made when its type is first used (a runner's module brings its clients and models:
importing all of them took ~0.1 s of every start), except the types given settings, made at
once so that settings that do not fit fail the engine's start, and the opt-in types, whose
instances say whether they are on. What validation asks (the types, their config models,
secret fields) is answered from the runner classes, which the registry imports one by one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel

from multi_task_orchestrator.engine.document.validation import Validation
from multi_task_orchestrator.engine.issues import Issue
from multi_task_orchestrator.engine.registry import declared
from multi_task_orchestrator.engine.runners.base import Runner


class RunnerSet:
    """The runners of the task types ``types`` names, each made with its entry in ``settings``
    (by task type; a type not named gets its defaults)."""

    def __init__(
        self,
        types: Mapping[str, type[Runner]],
        settings: Mapping[str, BaseModel | Mapping[str, Any]],
    ) -> None:
        self._classes = types
        self._settings = settings
        self._made: dict[str, Runner] = {}
        self._lock = threading.RLock()  # validation asks from a worker thread
        self._ready = False  # until the disabled types are known, a runner meets no other
        opt_in = [name for name in types if declared(types, name).opt_in]
        for name in [*(n for n in types if n in settings), *opt_in]:
            self._make(name)
        # opt-in types (e.g. shell) their settings leave off, with how to switch them on
        self.disabled: dict[str, str] = {
            name: self._made[name].opt_in or "its settings leave it off"
            for name in opt_in
            if not self._made[name].enabled()
        }
        self._names = [name for name in types if name not in self.disabled]
        self.classes: Mapping[str, type[Runner]] = _Enabled(types, self._names)
        self._using = _Made(self)
        self._ready = True
        for name, runner in list(self._made.items()):
            if name not in self.disabled:
                runner.use_runners(self._using)

    def _make(self, name: str) -> Runner:
        with self._lock:
            runner = self._made.get(name)
            if runner is None:
                cls = self._classes[name]
                given = self._settings.get(name)
                runner = self._made[name] = cls(given) if given is not None else cls()
                if self._ready:
                    runner.use_runners(self._using)
            return runner

    def get(self, type_name: str) -> Runner:
        if type_name in self.disabled or type_name not in self._classes:
            raise KeyError(type_name)
        return self._make(type_name)

    def all(self) -> dict[str, Runner]:
        return {name: self._make(name) for name in self._names}

    @property
    def types(self) -> set[str]:
        return set(self._names)

    @property
    def secret_fields(self) -> Mapping[str, frozenset[str]]:
        """Per task type, the config fields whose ``${vault.NAME}`` its runner reveals."""
        return _Attribute(self.classes, "secret_fields")

    @property
    def configs(self) -> Mapping[str, type[BaseModel]]:
        return _Attribute(self.classes, "config_model")

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
            runner = self.get(type_name) if type_name in self.classes else None
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
        for name, runner in list(self._made.items()):
            if name not in self.disabled:
                await runner.aclose()


class _Enabled(Mapping[str, type[Runner]]):
    """The classes of the enabled types, each imported when asked for."""

    def __init__(self, classes: Mapping[str, type[Runner]], names: list[str]) -> None:
        self._classes, self._names = classes, names

    def __getitem__(self, name: str) -> type[Runner]:
        if name not in self._names:
            raise KeyError(name)
        return self._classes[name]

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class _Attribute(Mapping[str, Any]):
    """One class attribute of each enabled type's runner (``config_model``, say), by type."""

    def __init__(self, classes: Mapping[str, type[Runner]], attribute: str) -> None:
        self._classes, self._attribute = classes, attribute

    def __getitem__(self, name: str) -> Any:
        return getattr(self._classes[name], self._attribute)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)


class _Made(Mapping[str, Runner]):
    """The runners of the enabled types, as ``Runner.use_runners`` gets them: each made when
    another runner first asks for it."""

    def __init__(self, runners: RunnerSet) -> None:
        self._runners = runners

    def __getitem__(self, name: str) -> Runner:
        return self._runners.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._runners.classes

    def __iter__(self) -> Iterator[str]:
        return iter(self._runners.classes)

    def __len__(self) -> int:
        return len(self._runners.classes)
