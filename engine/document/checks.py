"""The structure checks of a document: duplicate ids, dependencies (unknown, forward, into a
later stage), cycles with their path, unknown limits, fields that do not apply, task types
that are disabled or have no runner, and vars given from outside that the document never uses.
Each returns its issues in document order."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from multi_task_orchestrator.engine import dag, registry
from multi_task_orchestrator.engine.document.examined import ExaminedDocument
from multi_task_orchestrator.engine.document.models import Mode, TaskSpec
from multi_task_orchestrator.engine.document.plan import dependency_graph
from multi_task_orchestrator.engine.issues import Issue, Location, did_you_mean


def check_duplicates(doc: ExaminedDocument) -> list[Issue]:
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


def check_dependencies(doc: ExaminedDocument) -> list[Issue]:
    issues = []
    for index, task in doc.entries:
        for position, dep in enumerate(task.dependencies):
            problem = _dependency_problem(doc, task, dep)
            if problem:
                message, hint = problem
                issues.append(doc.raw.issue(message, doc.dependency_loc(index, position), hint))
    return issues


def _dependency_problem(doc: ExaminedDocument, task: TaskSpec, dep: str) -> tuple[str, str] | None:
    """What is wrong with ``task`` depending on ``dep``, as (message, hint), or None."""
    if dep not in doc.known_ids:
        hint = did_you_mean(dep, doc.known_ids) or doc.known_tasks_hint()
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


def check_cycles(doc: ExaminedDocument) -> list[Issue]:
    issues = []
    graph = doc.graph
    cycles = dag.cycles(dependency_graph(graph), lambda task_id: doc.order.get(task_id, 0))
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


def check_limits(doc: ExaminedDocument) -> list[Issue]:
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


def check_task_fields(doc: ExaminedDocument) -> list[Issue]:
    # Judged by value, not by presence: a dumped document spells out allow_partial: false.
    issues = []
    for index, task in doc.entries:
        # asked only then: knowing the model steps imports every runner
        if task.budget is not None and task.type not in (model_steps := registry.budget_types()):
            issues.append(
                doc.raw.issue(
                    f"budget only applies to model steps ({', '.join(model_steps)}); a "
                    f"{task.type} task makes no model call, so it is ignored here",
                    ("tasks", index, "budget"),
                    "remove it, or put the budget on the model steps (or on the orchestration)",
                    severity="warning",
                )
            )
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


def check_disabled(doc: ExaminedDocument, disabled: Mapping[str, str]) -> list[Issue]:
    return [
        doc.raw.issue(
            f"task type '{task.type}' is disabled: {disabled[task.type]}",
            ("tasks", index, "type"),
            "ask whoever runs the server to enable it, or use another task type",
        )
        for index, task in doc.entries
        if task.type in disabled
    ]


def check_types(
    doc: ExaminedDocument, available: Collection[str], required: bool, disabled: Mapping[str, str]
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


_VAR_NAMED = re.compile(r"\bvars\.([A-Za-z_][\w-]*)")
_VARS_WHOLE = re.compile(r"\bvars\b(?!\.[A-Za-z_])")


def check_given_vars(doc: ExaminedDocument, given: Collection[str]) -> list[Issue]:
    """A warning for each var given from outside (``--var``, a tool's ``vars``) that the
    document neither defines nor refers to: a misspelt name would otherwise change nothing,
    silently. A document that uses ``vars`` whole (or says the word otherwise) gets none."""
    data = doc.raw.data if isinstance(doc.raw.data, dict) else {}
    defined = data.get("vars")
    defined_names = {str(name) for name in defined} if isinstance(defined, dict) else set()
    unknown = [name for name in given if name not in defined_names]
    if not unknown:
        return []
    used = _var_names_used(data)
    if used is None:
        return []
    known = sorted(defined_names | used)
    issues = []
    for name in unknown:
        if name in used:
            continue
        hint = did_you_mean(name, known) or (
            f"its vars: {', '.join(known)}" if known else "it uses no vars"
        )
        message = f"var '{name}' was given, but the document neither defines nor uses it"
        issues.append(Issue(message, (), hint, severity="warning"))
    return issues


def _var_names_used(data: object) -> set[str] | None:
    """The names ``vars.NAME`` mentions in the document's text values; None when ``vars``
    appears otherwise (``${vars}``, ``vars['a b']``), as any var may then be used."""
    used: set[str] = set()
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and "vars" in value:
            if _VARS_WHOLE.search(value):
                return None
            used.update(_VAR_NAMED.findall(value))
    return used
