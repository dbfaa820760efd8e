"""Validation of an orchestration document, and the plan of a valid one.

``validate`` reports every problem in one pass, each with its line, column and a fix hint: the
document's own errors (from ``engine.document``), then the graph's — duplicate ids, unknown
dependencies, cycles with their path, ``${...}`` references a task cannot see, forward references,
unknown limits, task types without a runner and runner configs that do not fit. A valid document
also gets a ``Plan``: its stages, critical path, limits and fan-outs.

The graph helpers (``dag_levels``, ``execution_stages``, ``ancestors``) are shared with the
scheduler, so the plan shows the order the scheduler will actually follow; the algorithms under
them are ``engine.dag``'s, on the tasks' dependency graph.
"""

from __future__ import annotations

import functools
import json
import re
import typing
from collections.abc import Callable, Collection, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from multi_task_orchestrator.engine import dag, registry
from multi_task_orchestrator.engine.document.building import (
    build,
    issues_from_validation,
    raw_task_ids,
)
from multi_task_orchestrator.engine.document.loader import (
    MAX_DOCUMENT_BYTES,
    MAX_NESTING_DEPTH,
    RawDocument,
    load_source,
    too_many_tasks,
)
from multi_task_orchestrator.engine.document.models import (
    DEPENDENCY_SPELLINGS,
    Mode,
    Orchestration,
    TaskSpec,
)
from multi_task_orchestrator.engine.expressions import ExpressionError, Reference, find_references
from multi_task_orchestrator.engine.issues import (
    DocumentError,
    Issue,
    Location,
    did_you_mean,
    format_loc,
)
from multi_task_orchestrator.engine.secrets import SecretsUnavailable

SecretNames = Collection[str] | Callable[[], Collection[str] | None] | None

DEPENDENCY_KEYS = DEPENDENCY_SPELLINGS  # the keys a task may spell its dependencies with
_LISTED_NAMES = 12


# --- the plan -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """How a valid document will run: stages, the longest chain, limits and fan-outs."""

    mode: str
    task_count: int
    max_concurrent: int
    stages: list[list[str]]
    critical_path: list[str]
    limits: dict[str, dict]
    fan_outs: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "task_count": self.task_count,
            "max_concurrent": self.max_concurrent,
            "stages": [list(stage) for stage in self.stages],
            "critical_path": list(self.critical_path),
            "limits": {
                name: {**pool, "tasks": list(pool["tasks"])} for name, pool in self.limits.items()
            },
            "fan_outs": list(self.fan_outs),
        }

    def describe(self) -> str:
        """The plan as text for people: stages, critical path, limits and fan-outs."""
        tasks = _plural(self.task_count, "task")
        stages = _plural(len(self.stages), "stage")
        pace = "one at a time" if self.mode == "sequential" else f"{self.max_concurrent} at once"
        lines = [f"{tasks} in {stages} ({self.mode}, {pace})"]
        lines += [f"  stage {n}: {', '.join(ids)}" for n, ids in enumerate(self.stages, start=1)]
        chain = " -> ".join(self.critical_path)
        lines.append(f"critical path: {chain} ({_plural(len(self.critical_path), 'task')})")
        if self.limits:
            lines.append("limits:")
            for name, pool in self.limits.items():
                caps = []
                if pool["concurrency"] is not None:
                    caps.append(f"{pool['concurrency']} at once")
                if pool["rate"] is not None:
                    caps.append(pool["rate"])
                members = ", ".join(pool["tasks"]) or "no task uses it"
                lines.append(f"  {name} ({', '.join(caps)}): {members}")
        if self.fan_outs:
            lines.append(f"fan-out (one child per item): {', '.join(self.fan_outs)}")
        return "\n".join(lines)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# --- the result of validation -------------------------------------------------------------


@dataclass(slots=True)
class Validation:
    """Every problem found in a document; the orchestration and its plan when there is no error."""

    orchestration: Orchestration | None
    issues: list[Issue] = field(default_factory=list)
    plan: Plan | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.severity == "warning"]

    def raise_for_errors(self) -> Orchestration:
        """The orchestration, or a DocumentError carrying every error."""
        if self.errors or self.orchestration is None:
            raise DocumentError(self.errors or self.issues)
        return self.orchestration


def validate(
    source: str | Path | Mapping[str, Any] | RawDocument,
    *,
    extra_vars: Mapping[str, Any] | None = None,
    available_types: Collection[str] | None = None,
    require_runners: bool = False,
    runner_configs: Mapping[str, type[BaseModel]] | None = None,
    secret_names: SecretNames = None,
    secret_fields: Mapping[str, Collection[str]] | None = None,
    disabled_types: Mapping[str, str] | None = None,
    max_document_bytes: int = MAX_DOCUMENT_BYTES,
    max_depth: int = MAX_NESTING_DEPTH,
    max_tasks: int | None = None,
) -> Validation:
    """Check a document completely; never raises for bad input.

    ``extra_vars`` are merged over the document's ``vars``. A known task type missing from
    ``available_types`` is a warning, or an error with ``require_runners``; a type in
    ``disabled_types`` is always an error, with its value (how to enable it) as the hint. Each
    task's ``config`` is checked against ``runner_configs[type]`` where one is given. With
    ``secret_names`` (the names, or a function asked for them at the first ``${vault.NAME}``,
    which may raise SecretsUnavailable), every ``${vault.NAME}`` must name a stored secret.
    With ``secret_fields`` (task type -> the config fields its runner reveals secrets in), a
    ``${vault.NAME}`` anywhere else is an error: it would be used as the literal text. Text over
    ``max_document_bytes``, or nested deeper than ``max_depth``, is refused before it is read;
    a document with more than ``max_tasks`` tasks is refused as soon as they are counted.
    """
    if isinstance(source, RawDocument):
        raw = source
    else:
        try:
            raw = load_source(
                source, max_bytes=max_document_bytes, max_depth=max_depth, max_tasks=max_tasks
            )
        except DocumentError as exc:
            return Validation(None, _sorted(exc.issues), None)
    too_many = _too_many_tasks(raw, max_tasks)
    if too_many is not None:
        return Validation(None, [too_many], None)
    extra = dict(extra_vars or {})

    orchestration, _, issues = build(raw)
    doc = _Document.examine(raw, orchestration, extra)
    doc.secrets = _Secrets(secret_names, secret_fields)
    issues += _check_duplicates(doc)
    issues += _check_dependencies(doc)
    issues += _check_cycles(doc)
    issues += _check_references(doc)
    issues += _check_other_syntaxes(doc)
    issues += _check_limits(doc)
    issues += _check_task_fields(doc)
    if disabled_types:
        issues += _check_disabled(doc, disabled_types)
    if available_types is not None:
        issues += _check_types(doc, available_types, require_runners, disabled_types or {})
    if runner_configs:
        issues += _check_configs(doc, runner_configs)

    issues = _sorted(issues)
    if orchestration is None or any(issue.severity == "error" for issue in issues):
        return Validation(None, issues, None)
    if extra:
        orchestration = orchestration.model_copy(update={"vars": {**orchestration.vars, **extra}})
    return Validation(orchestration, issues, make_plan(orchestration))


def _too_many_tasks(raw: RawDocument, max_tasks: int | None) -> Issue | None:
    """The limit on tasks, checked before any task is: counting is cheap, checking is not."""
    tasks = raw.data.get("tasks") if isinstance(raw.data, dict) else None
    if max_tasks is None or not isinstance(tasks, list) or len(tasks) <= max_tasks:
        return None
    line, column = raw.position(("tasks",)) or (None, None)
    return too_many_tasks(len(tasks), max_tasks, line, column)


def _sorted(issues: Iterable[Issue]) -> list[Issue]:
    return sorted(issues, key=lambda i: (i.line is None, i.line or 0, i.column or 0))


# --- what the checks look at --------------------------------------------------------------


class _Secrets:
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
class _Document:
    """The parts of a (possibly invalid) document the graph checks need."""

    raw: RawDocument
    mode: Mode | None  # None when the document's mode is itself invalid
    entries: list[tuple[int, TaskSpec]]  # (index in `tasks`, task) for each valid task
    known_ids: set[str]  # every id in the document, valid task or not
    valid_ids: set[str]
    order: dict[str, int]  # id -> index of its first task
    var_names: set[str] | None  # None when `vars` is not a mapping
    limit_names: list[str] | None  # None when `limits` is not a mapping
    graph: dict[str, TaskSpec] = field(default_factory=dict)  # valid tasks by id (`_by_id`)
    stages: dict[str, int] = field(default_factory=dict)  # mixed mode: id -> stage number
    explicit_stages: bool = False
    secrets: _Secrets = field(default_factory=lambda: _Secrets(None, None))

    @classmethod
    def examine(
        cls, raw: RawDocument, orchestration: Orchestration | None, extra_vars: dict[str, Any]
    ) -> _Document:
        data = raw.data if isinstance(raw.data, dict) else {}
        listed = data.get("tasks")
        raw_tasks: list[Any] = listed if isinstance(listed, list) else []
        entries: list[tuple[int, TaskSpec]] = []
        if orchestration is not None:
            entries = list(enumerate(orchestration.tasks))
        else:
            for index, item in enumerate(raw_tasks):
                try:
                    entries.append((index, TaskSpec.model_validate(item)))
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

        graph = _by_id(task for _, task in entries)
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
            doc.stages = _stage_numbers(tasks)
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


# --- the checks ---------------------------------------------------------------------------


def _check_duplicates(doc: _Document) -> list[Issue]:
    issues = []
    first_seen: dict[str, int] = {}
    raw_tasks = doc.raw.data.get("tasks") if isinstance(doc.raw.data, dict) else None
    for index, item in enumerate(raw_tasks if isinstance(raw_tasks, list) else []):
        task_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(task_id, str):
            continue
        if task_id not in first_seen:
            first_seen[task_id] = index
            continue
        first = first_seen[task_id]
        line = doc.raw.position(("tasks", first, "id"))
        where = f"tasks[{first}]" + (f" on line {line[0]}" if line else "")
        issues.append(
            doc.raw.issue(
                f"duplicate task id '{task_id}': {where} already uses it",
                ("tasks", index, "id"),
                "rename it; every task needs its own id",
            )
        )
    return issues


def _check_dependencies(doc: _Document) -> list[Issue]:
    issues = []
    for index, task in doc.entries:
        for position, dep in enumerate(task.dependencies):
            problem = _dependency_problem(doc, task, dep)
            if problem:
                message, hint = problem
                issues.append(doc.raw.issue(message, doc.dependency_loc(index, position), hint))
    return issues


def _dependency_problem(doc: _Document, task: TaskSpec, dep: str) -> tuple[str, str] | None:
    """What is wrong with ``task`` depending on ``dep``, as (message, hint), or None."""
    if dep not in doc.known_ids:
        hint = did_you_mean(dep, doc.known_ids) or _known_tasks_hint(doc)
        return f"unknown dependency '{dep}': no task has that id", hint
    if doc.mode is Mode.sequential and doc.order[dep] > doc.order[task.id]:
        return (
            f"forward reference: '{task.id}' depends on '{dep}', which comes later; "
            "mode: sequential runs tasks in document order",
            f"move '{dep}' above '{task.id}', or use mode: parallel",
        )
    if doc.mode is Mode.mixed and dep in doc.stages and doc.stages[dep] > doc.stages[task.id]:
        own, theirs = doc.stages[task.id], doc.stages[dep]
        return (
            f"'{task.id}' (stage {own}) depends on '{dep}' (stage {theirs}), "
            "which runs in a later stage: it would wait forever",
            f"give '{dep}' stage {own} or lower, or '{task.id}' stage {theirs} or higher",
        )
    return None


def _check_cycles(doc: _Document) -> list[Issue]:
    issues = []
    graph = doc.graph
    cycles = dag.cycles(_edges(graph), lambda task_id: doc.order.get(task_id, 0))
    first_index: dict[str, int] = {}  # the index of the first valid task with each id
    for index, task in doc.entries if cycles else ():
        first_index.setdefault(task.id, index)
    for cycle in cycles:
        index = first_index[cycle[0]]
        loc = doc.dependency_loc(index, graph[cycle[0]].dependencies.index(cycle[1]))
        path = " -> ".join(cycle)
        hint = (
            f"a task cannot depend on itself: remove '{cycle[0]}' from its dependencies"
            if len(cycle) == 2
            else "remove one of these dependencies to break the cycle"
        )
        issues.append(doc.raw.issue(f"dependency cycle: {path}", loc, hint))
    return issues


def _check_references(doc: _Document) -> list[Issue]:
    issues = []
    ancestor_cache: dict[str, dag.Ancestors] = {}
    reach = dag.Reach(_edges(doc.graph))
    for index, task in doc.entries:
        in_config = find_references(task.config, ("tasks", index, "config"))
        found = [(loc, ref, False) for loc, ref in in_config]
        if task.for_each is not None:
            in_for_each = find_references(task.for_each, ("tasks", index, "for_each"))
            found += [(loc, ref, True) for loc, ref in in_for_each]
            if isinstance(task.for_each, str) and not in_for_each:
                meant = next(_other_syntaxes(doc, task, task.for_each), None)
                issues.append(
                    doc.raw.issue(
                        "for_each must be a list or a ${...} reference to one",
                        ("tasks", index, "for_each"),
                        f"did you mean {meant[1]}?"
                        if meant
                        else 'e.g. for_each: "${merge_content.output.destinations}" or [a, b, c]',
                    )
                )
        for loc, ref, inside_for_each in found:
            if isinstance(ref, ExpressionError):
                issues.append(doc.raw.issue(ref.message, loc, ref.hint))
                continue
            if task.id not in ancestor_cache:
                ancestor_cache[task.id] = dag.Ancestors(task.dependencies, reach)
            written = _value_at(task.for_each if inside_for_each else task.config, loc[3:])
            shown = _shown(ref, written)
            if ref.kind == "vault":
                problem = _secret_problem(doc, task, ref, shown, loc)
            else:
                problem = _reference_problem(
                    doc, task, ref, shown, inside_for_each, ancestor_cache[task.id]
                )
            if problem:
                message, hint = problem
                issues.append(doc.raw.issue(message, loc, hint))
    return issues


def _reference_problem(
    doc: _Document,
    task: TaskSpec,
    ref: Reference,
    shown: str,
    inside_for_each: bool,
    seen: Container[str],
) -> tuple[str, str | None] | None:
    """What is wrong with one reference of ``task``, as (message, hint), or None.

    ``seen`` holds the task's transitive dependencies.
    """
    if ref.kind in ("item", "index"):
        if inside_for_each:
            return (
                f"'{shown}' cannot be used in for_each itself: it is what for_each produces",
                "refer to a task's output or to vars in for_each; use ${item} in config",
            )
        if task.for_each is None:
            return (
                f"'{shown}' only exists in a task with for_each",
                f"add for_each: to '{task.id}', or remove '{shown}'",
            )
        return None
    if ref.kind == "vars":
        name = _first_name(ref.path)
        if doc.var_names is None or not name or name in doc.var_names:
            return None
        suggestion = did_you_mean(name, doc.var_names)
        define = f"define '{name}' under vars: or pass --var {name}=VALUE"
        hint = f"{suggestion} Otherwise {define}" if suggestion else define
        return f"unknown variable '{name}' in '{shown}'", hint
    if ref.kind != "task":
        return None
    root = ref.root
    if root not in doc.known_ids:
        return f"unknown reference '{shown}': no task '{root}'", _unknown_root_hint(doc, ref)
    if root == task.id:
        return (
            f"'{shown}' refers to the task's own output, which does not exist while it runs",
            "refer to one of its dependencies instead",
        )
    if root not in doc.valid_ids or doc.mode is None:
        return None  # the referred task (or the mode) is already reported as invalid
    add = f"add '{root}' to dependencies"
    if doc.mode is Mode.parallel and root not in seen:
        return (
            f"'{shown}' refers to '{root}', which '{task.id}' does not depend on: "
            "it may not have run yet",
            add,
        )
    if doc.mode is Mode.sequential and doc.order[root] > doc.order[task.id]:
        return (
            f"forward reference: '{shown}' refers to '{root}', which runs after '{task.id}' "
            "(mode: sequential runs tasks in document order)",
            f"move '{root}' above '{task.id}'",
        )
    if doc.mode is Mode.mixed and root not in seen:
        own, theirs = doc.stages[task.id], doc.stages[root]
        if theirs < own:
            return None
        if theirs > own and doc.explicit_stages:
            hint = f"give '{root}' an earlier stage than '{task.id}' (stage {own})"
        else:
            hint = add
        return (
            f"'{shown}' refers to '{root}', which runs in the same or a later stage than "
            f"'{task.id}' and is not one of its dependencies",
            hint,
        )
    return None


def _secret_problem(
    doc: _Document, task: TaskSpec, ref: Reference, shown: str, loc: Location
) -> tuple[str, str | None] | None:
    """What is wrong with one ``${vault.NAME}`` of ``task`` at ``loc``, or None: it must be
    where the task's runner reveals secrets, and name a stored secret."""
    fields = (doc.secrets.fields or {}).get(task.type)
    if loc[2] == "for_each":
        return (
            f"'{shown}' cannot be used in for_each: secrets are revealed only in a task's config",
            "secrets may be used in " + doc.secrets.where_revealed(),
        )
    if fields is not None and not fields:
        return (
            f"'{shown}' cannot be used in a {task.type} task: {task.type} never reveals secrets, "
            f"so it would use the text '{shown}' as it is",
            "secrets may be used in " + doc.secrets.where_revealed(),
        )
    if fields and (len(loc) < 4 or loc[3] not in fields):
        where = format_loc(loc[2:4])
        return (
            f"'{shown}' cannot be used in {where} of a {task.type} task: {task.type} reveals "
            f"secrets only in {', '.join(sorted(fields))}",
            f"use it in {' or '.join(sorted(fields))} instead",
        )
    names = doc.secrets.names()
    if doc.secrets.problem is not None:
        problem, doc.secrets.problem = doc.secrets.problem, None  # reported once
        return f"'{shown}' needs the vault, which cannot be opened: {problem}", None
    if names is None or ref.path in names:
        return None
    store = f"store it first: orchestrator vault set {ref.path} --hosts HOST (or vault_set)"
    suggestion = did_you_mean(ref.path, names)
    return f"unknown secret '{ref.path}' in '{shown}'", (
        f"{suggestion} Otherwise {store}" if suggestion else store
    )


# {{name.path}} and $name.path: other template languages' spellings of a reference
_MUSTACHE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_-]*)((?:\.[A-Za-z0-9_-]+|\[\d+\])*)\s*\}\}")
_DOLLAR = re.compile(
    r"(?<![$\w])\$([A-Za-z_][A-Za-z0-9_-]*)((?:\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\])*)"
)
_TASK_FIELD = re.compile(r"\.(?:output|state|error)\b")


def _check_other_syntaxes(doc: _Document) -> list[Issue]:
    """``{{a.output}}`` or ``$a.output`` where ``${a.output}`` was meant: only ``${...}`` is
    replaced, so these would be used as text.

    Only names of this document count: a task id (an error: the document's own name can mean
    nothing else), or ``vars.NAME`` of a defined var and ``item``/``index`` in a for_each task
    (warnings: Jinja, Mustache and PowerShell use these words too, and a document may carry
    such a template or script as content). ``$HOME`` or ``$5`` are not touched.
    """
    issues = []
    for index, task in doc.entries:
        for loc, text in _texts(task.config, ("tasks", index, "config")):
            for written, meant, severity in _other_syntaxes(doc, task, text):
                issues.append(
                    doc.raw.issue(
                        f"'{written}' is not a reference (only ${{...}} is replaced), so it "
                        "would be used as it is written",
                        loc,
                        f"did you mean {meant}?",
                        severity=severity,
                    )
                )
    return issues


def _other_syntaxes(doc: _Document, task: TaskSpec, text: str) -> Iterator[tuple[str, str, str]]:
    """Each ``{{...}}`` or ``$name`` in ``text`` that names something of the document, as
    (what is written, the ${...} meant, severity)."""
    for pattern in (_MUSTACHE, _DOLLAR) if "{{" in text else (_DOLLAR,):
        for match in pattern.finditer(text):
            name, path = match.group(1), match.group(2)
            plain = pattern is _DOLLAR and match.group() != text  # `$x` inside other text
            if name in doc.known_ids:
                if plain and not _TASK_FIELD.match(path):
                    continue  # `$a` among other text: a shell variable, say
                yield match.group(), "${" + name + (path or ".output") + "}", "error"
            a_var = name == "vars" and _first_name(path[1:]) in (doc.var_names or ())
            an_item = name in ("item", "index") and task.for_each is not None
            if a_var or (an_item and (path or not plain)):
                yield match.group(), "${" + name + path + "}", "warning"


def _texts(value: Any, loc: Location) -> Iterable[tuple[Location, str]]:
    """Every string in ``value`` that holds ``$`` or ``{{``, with its location."""
    pending = [(loc, value)]
    while pending:
        where, current = pending.pop()
        if isinstance(current, str):
            if "$" in current or "{{" in current:
                yield where, current
        elif isinstance(current, dict):
            pending.extend(((*where, key), child) for key, child in current.items())
        elif isinstance(current, list):
            pending.extend(((*where, n), child) for n, child in enumerate(current))


def _check_limits(doc: _Document) -> list[Issue]:
    if doc.limit_names is None:
        return []
    issues = []
    for index, task in doc.entries:
        if not task.limit:
            continue
        single = isinstance(doc.raw_task(index).get("limit"), str)
        for position, name in enumerate(task.limit):
            if name in doc.limit_names:
                continue
            loc: Location = ("tasks", index, "limit")
            if not single:
                loc = (*loc, position)
            if doc.limit_names:
                pools = ", ".join(doc.limit_names)
                suggestion = did_you_mean(name, doc.limit_names)
                hint = f"{suggestion} pools: {pools}" if suggestion else f"pools: {pools}"
            else:
                hint = f"define it, e.g. limits: {{{name}: {{concurrency: 2}}}}"
            message = f"unknown limit '{name}': no such pool in limits"
            issues.append(doc.raw.issue(message, loc, hint))
    return issues


def _check_task_fields(doc: _Document) -> list[Issue]:
    # Judged by value, not by presence: a dumped document spells out allow_partial: false.
    issues = []
    for index, task in doc.entries:
        if task.stage is not None and doc.mode is not None and doc.mode is not Mode.mixed:
            issues.append(
                doc.raw.issue(
                    "stage only applies in mode: mixed; it is ignored here",
                    ("tasks", index, "stage"),
                    "remove it, or set mode: mixed",
                    severity="warning",
                )
            )
        if task.for_each is not None:
            continue
        for name, given in (
            ("max_concurrent", task.max_concurrent is not None),
            ("allow_partial", task.allow_partial),
        ):
            if given:
                issues.append(
                    doc.raw.issue(
                        f"{name} only applies to a task with for_each; it is ignored here",
                        ("tasks", index, name),
                        "remove it, or add for_each: to fan the task out",
                        severity="warning",
                    )
                )
    return issues


def _check_disabled(doc: _Document, disabled: Mapping[str, str]) -> list[Issue]:
    return [
        doc.raw.issue(
            f"task type '{task.type}' is disabled: {disabled[task.type]}",
            ("tasks", index, "type"),
            "ask whoever runs the server to enable it, or use another task type",
        )
        for index, task in doc.entries
        if task.type in disabled
    ]


def _check_types(
    doc: _Document, available: Collection[str], required: bool, disabled: Mapping[str, str]
) -> list[Issue]:
    issues = []
    ready = ", ".join(t for t in registry.type_names() if t in available) or "none"
    for index, task in doc.entries:
        if task.type in available or task.type in disabled:
            continue
        issues.append(
            doc.raw.issue(
                f"task type '{task.type}' is not available in this version yet "
                "(its runner arrives later)",
                ("tasks", index, "type"),
                f"available types: {ready}",
                severity="error" if required else "warning",
            )
        )
    return issues


def _check_configs(doc: _Document, models: Mapping[str, type[BaseModel]]) -> list[Issue]:
    by_model: dict[type[BaseModel], list[tuple[int, TaskSpec]]] = {}
    for index, task in doc.entries:
        model = models.get(task.type)
        if model is not None:
            by_model.setdefault(model, []).append((index, task))
    issues = []
    for model, entries in by_model.items():
        try:
            _configs_adapter(model).validate_python([task.config for _, task in entries])
        except ValidationError:
            issues += _config_issues(doc, model, entries)
    return sorted(issues, key=lambda issue: issue.loc[1])


@functools.cache
def _configs_adapter(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    """Validates the configs of all tasks of one type in one call (built once per model)."""
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def _config_issues(
    doc: _Document, model: type[BaseModel], entries: list[tuple[int, TaskSpec]]
) -> list[Issue]:
    """The problems in the configs of ``entries``, each config validated on its own."""
    issues = []
    for index, task in entries:
        try:
            model.model_validate(task.config)
        except ValidationError as exc:
            found = issues_from_validation(exc, doc.raw, ("tasks", index, "config"))
            for error, issue in zip(exc.errors(include_url=False), found, strict=True):
                if error["type"] == "extra_forbidden":
                    # spec's hint names the document's fields; name the runner config's instead
                    hint = _config_field_hint(model, error["loc"])
                    issues.append(replace(issue, hint=hint))
                # a value holding a reference can only be judged once it is resolved; but a
                # secret refused where it stands (an evaluate script's) is refused as written
                elif error["type"] == "secret_refused" or not _holds_reference(
                    _value_at(task.config, error["loc"])
                ):
                    issues.append(issue)
    return issues


def _config_field_hint(model: type[BaseModel], loc: Sequence[str | int]) -> str | None:
    """A 'did you mean' (or the allowed fields) for an unknown key in a runner's config.

    Walks nested models through optional fields and through the keys and indexes of dicts and
    lists of models; names fields as documents write them (by alias).
    """
    current: Any = model
    for part in loc[:-1]:
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {info.alias or name: info for name, info in current.model_fields.items()}
            field_info = fields.get(part) if isinstance(part, str) else None
            if field_info is None:
                return None
            current = _only_model(field_info.annotation)
        elif isinstance(current, tuple):  # a dict's key or a list's index: its item follows
            current = current[0]
        else:
            return None
    if not (isinstance(current, type) and issubclass(current, BaseModel)):
        return None
    names = [info.alias or name for name, info in current.model_fields.items()]
    return did_you_mean(str(loc[-1]), names) or f"allowed fields: {', '.join(names)}"


def _only_model(annotation: Any) -> Any:
    """The one model an annotation holds (``M | None``), or ``(M,)`` for ``dict[str, M]`` and
    ``list[M]``; None when it holds no model or several."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin in (dict, list) and arguments:
        inner = _only_model(arguments[-1])
        return (inner,) if isinstance(inner, type) else None
    models = [found for found in map(_only_model, arguments) if isinstance(found, type | tuple)]
    return models[0] if len(models) == 1 else None


# --- helpers for the checks ---------------------------------------------------------------


def _shown(ref: Reference, written: Any) -> str:
    """The reference as the document writes it: ``${...}``, or the seed's bare form."""
    return ref.text if written == ref.text else "${" + ref.text + "}"


_QUOTED_NAME = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _first_name(path: str) -> str | None:
    """The first name a JMESPath path reads: ``a`` in ``a.b[0]``, ``my-key`` in ``"my-key".b``."""
    quoted = _QUOTED_NAME.match(path)
    if quoted:
        return json.loads(quoted.group())
    name = re.match(r"[A-Za-z_][A-Za-z0-9_]*", path)
    return name.group() if name else None


def _unknown_root_hint(doc: _Document, ref: Reference) -> str:
    root = ref.root
    if doc.var_names and root in doc.var_names:
        return f"'{root}' is a variable: write ${{vars.{root}}}"
    suggestion = did_you_mean(root, doc.known_ids)
    if suggestion is None:
        return _known_tasks_hint(doc)
    if ref.expression:
        return suggestion
    target = suggestion.split("'")[1]
    return f"{suggestion} write ${{{target}.{ref.path or 'output'}}}"


def _known_tasks_hint(doc: _Document) -> str:
    names = sorted(doc.known_ids, key=lambda task_id: doc.order.get(task_id, 0))
    if not names:
        return "the document has no task ids yet"
    listed = ", ".join(names[:_LISTED_NAMES]) + (", ..." if len(names) > _LISTED_NAMES else "")
    return f"tasks: {listed}"


def _holds_reference(value: Any) -> bool:
    return value is not _MISSING and bool(find_references(value))


_MISSING = object()


def _value_at(value: Any, loc: Iterable[str | int]) -> Any:
    """The value an error points at; a scalar stops the walk (pydantic adds union tags)."""
    for part in loc:
        if isinstance(value, dict):
            if part not in value:
                return _MISSING
            value = value[part]
        elif isinstance(value, list):
            if not isinstance(part, int) or not -len(value) <= part < len(value):
                return _MISSING
            value = value[part]
        else:
            return value
    return value


# --- the graph ----------------------------------------------------------------------------


def _by_id(tasks: Iterable[TaskSpec]) -> dict[str, TaskSpec]:
    """Tasks by id, in document order; the first of duplicates wins."""
    by_id: dict[str, TaskSpec] = {}
    for task in tasks:
        by_id.setdefault(task.id, task)
    return by_id


def _edges(graph: Mapping[str, TaskSpec]) -> dict[str, Sequence[str]]:
    """The tasks' dependency graph, as ``engine.dag`` takes it."""
    return {task_id: task.dependencies for task_id, task in graph.items()}


def dag_levels(tasks: Sequence[TaskSpec]) -> dict[str, int]:
    """Each task's level: 0 without dependencies, else one more than its deepest dependency."""
    return dag.levels(_edges(_by_id(tasks)))


def _stage_numbers(tasks: Sequence[TaskSpec]) -> dict[str, int]:
    """Mixed mode: explicit ``stage:`` numbers when any task has one, otherwise the DAG levels.

    A task without a number takes the highest stage of its dependencies, or the lowest stage
    number present when it has none.
    """
    explicit = [task.stage for task in tasks if task.stage is not None]
    if not explicit:
        return dag_levels(tasks)
    lowest = min(explicit)
    graph = _by_id(tasks)

    def stage(task_id: str, deps: dict[str, int]) -> int:
        number = graph[task_id].stage
        if number is not None:
            return number
        return max(deps.values()) if deps else lowest

    return dag.fold(_edges(graph), stage)


def execution_stages(orchestration: Orchestration) -> list[list[str]]:
    """The barriers the scheduler keeps: each stage finishes before the next one starts."""
    ids = list(_by_id(orchestration.tasks))
    match orchestration.mode:
        case Mode.parallel:
            return [ids]
        case Mode.sequential:
            return [[task_id] for task_id in ids]
        case Mode.mixed:
            return dag.group(_stage_numbers(orchestration.tasks))
    raise ValueError(f"unknown mode {orchestration.mode!r}")


def ancestors(tasks: Sequence[TaskSpec]) -> dict[str, set[str]]:
    """Each task's transitive dependencies (ids of tasks in ``tasks`` only)."""
    return dag.ancestors(_edges(_by_id(tasks)))


def make_plan(orchestration: Orchestration) -> Plan:
    """The plan of a valid orchestration."""
    tasks = orchestration.tasks
    chains = dag.chains(_edges(_by_id(tasks)))
    if orchestration.mode is Mode.parallel:
        stages = dag.group({task_id: count - 1 for task_id, (count, _) in chains.items()})
    else:
        stages = execution_stages(orchestration)
    members: dict[str, list[str]] = {name: [] for name in orchestration.limits}
    for task in tasks if members else ():
        for name in dict.fromkeys(task.limit):
            if name in members:
                members[name].append(task.id)
    limits = {
        name: {
            "concurrency": pool.concurrency,
            "rate": str(pool.rate) if pool.rate is not None else None,
            "tasks": members[name],
        }
        for name, pool in orchestration.limits.items()
    }
    return Plan(
        mode=orchestration.mode.value,
        task_count=len(tasks),
        max_concurrent=orchestration.max_concurrent,
        stages=stages,
        critical_path=dag.longest_path(chains),
        limits=limits,
        fan_outs=[task.id for task in tasks if task.for_each is not None],
    )
