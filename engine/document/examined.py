"""What the checks of a document look at: the parts of a (possibly invalid) document they need,
gathered once, and what validation knows of secrets."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from multi_task_orchestrator.engine.document.building import raw_task_ids
from multi_task_orchestrator.engine.document.loader import RawDocument
from multi_task_orchestrator.engine.document.models import (
    DEPENDENCY_SPELLINGS,
    Mode,
    Orchestration,
    TaskSpec,
    parse_task,
)
from multi_task_orchestrator.engine.document.plan import stage_numbers, tasks_by_id
from multi_task_orchestrator.engine.issues import Location
from multi_task_orchestrator.engine.secrets import SecretsUnavailable

SecretNames = Collection[str] | Callable[[], Collection[str] | None] | None

DEPENDENCY_KEYS = DEPENDENCY_SPELLINGS  # the keys a task may spell its dependencies with
_LISTED_NAMES = 12


class KnownSecrets:
    """What validation knows of secrets: the stored names (asked for once, at the first
    reference) and, per task type, the config fields where its runner reveals them."""

    def __init__(self, names: SecretNames, fields: Mapping[str, Collection[str]] | None) -> None:
        self._source = names
        self._names: Collection[str] | None = None if callable(names) else names
        self._asked = not callable(names)
        self.fields = fields
        self.problem: str | None = None  # why the names cannot be told, until reported once

    def names(self) -> Collection[str] | None:
        if not self._asked:
            self._asked = True
            assert callable(self._source)
            try:
                self._names = self._source()
            except SecretsUnavailable as exc:
                self.problem = exc.message
        return self._names

    def where_revealed(self) -> str:
        """The task types and config fields where secrets may be used, for hints."""
        places = [
            f"{task_type} ({', '.join(sorted(names))})"
            for task_type, names in sorted((self.fields or {}).items())
            if names
        ]
        return "; ".join(places) or "no task type of this server"


@dataclass(slots=True)
class ExaminedDocument:
    """The parts of a (possibly invalid) document the checks need."""

    raw: RawDocument
    mode: Mode | None  # None when the document's mode is itself invalid
    entries: list[tuple[int, TaskSpec]]  # (index in `tasks`, task) for each valid task
    known_ids: set[str]  # every id in the document, valid task or not
    valid_ids: set[str]
    order: dict[str, int]  # id -> index of its first task
    var_names: set[str] | None  # None when `vars` is not a mapping
    limit_names: list[str] | None  # None when `limits` is not a mapping
    graph: dict[str, TaskSpec] = field(default_factory=dict)  # valid tasks by id (`tasks_by_id`)
    stages: dict[str, int] = field(default_factory=dict)  # mixed mode: id -> stage number
    explicit_stages: bool = False
    secrets: KnownSecrets = field(default_factory=lambda: KnownSecrets(None, None))

    @classmethod
    def examine(
        cls, raw: RawDocument, orchestration: Orchestration | None, extra_vars: dict[str, Any]
    ) -> ExaminedDocument:
        data = raw.data if isinstance(raw.data, dict) else {}
        listed = data.get("tasks")
        raw_tasks: list[Any] = listed if isinstance(listed, list) else []
        entries: list[tuple[int, TaskSpec]] = []
        if orchestration is not None:
            entries = list(enumerate(orchestration.tasks))
        else:
            for index, item in enumerate(raw_tasks):
                try:
                    entries.append((index, parse_task(item)))
                except ValidationError:
                    continue
        order: dict[str, int] = {}
        for index, item in enumerate(raw_tasks):
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                order.setdefault(item["id"], index)

        mode: Mode | None = orchestration.mode if orchestration else None
        if orchestration is None:
            try:
                mode = Mode(data.get("mode", Mode.parallel.value))
            except (ValueError, TypeError):
                mode = None
        raw_vars = data.get("vars", {})
        var_names = set(raw_vars) | set(extra_vars) if isinstance(raw_vars, dict) else None
        raw_limits = data.get("limits", {})
        limit_names = [str(name) for name in raw_limits] if isinstance(raw_limits, dict) else None

        graph = tasks_by_id(task for _, task in entries)
        doc = cls(
            raw=raw,
            mode=mode,
            entries=entries,
            known_ids=set(raw_task_ids(raw)),
            valid_ids=set(graph),
            order=order,
            var_names=var_names,
            limit_names=limit_names,
            graph=graph,
        )
        if mode is Mode.mixed:
            tasks = doc.tasks
            doc.explicit_stages = any(task.stage is not None for task in tasks)
            doc.stages = stage_numbers(tasks)
        return doc

    @property
    def tasks(self) -> list[TaskSpec]:
        return [task for _, task in self.entries]

    def raw_task(self, index: int) -> dict[str, Any]:
        item = self.raw.data["tasks"][index]
        return item if isinstance(item, dict) else {}

    def dependency_loc(self, index: int, position: int) -> Location:
        """Where dependency number ``position`` of task ``index`` is, under whichever key."""
        item = self.raw_task(index)
        key = next((k for k in DEPENDENCY_KEYS if k in item), DEPENDENCY_KEYS[0])
        if isinstance(item.get(key), str):
            return ("tasks", index, key)
        return ("tasks", index, key, position)

    def known_tasks_hint(self) -> str:
        """The document's task ids as a hint, in document order (the first few)."""
        names = sorted(self.known_ids, key=lambda task_id: self.order.get(task_id, 0))
        if not names:
            return "the document has no task ids yet"
        listed = ", ".join(names[:_LISTED_NAMES]) + (", ..." if len(names) > _LISTED_NAMES else "")
        return f"tasks: {listed}"
