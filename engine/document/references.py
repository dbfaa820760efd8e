"""The ``${...}`` references of a document's tasks: each must name something the task can see
when it runs (a dependency's output, a var, its item in a for_each), and each ``${vault.NAME}``
a stored secret, where the task's runner reveals secrets. Other template languages' spellings
(``{{a.output}}``, ``$a.output``) of a name the document has get a hint: only ``${...}`` is
replaced."""

from __future__ import annotations

import json
import re
from collections.abc import Container, Iterable, Iterator, Mapping
from typing import Any

from multi_task_orchestrator.engine import dag
from multi_task_orchestrator.engine.document.examined import ExaminedDocument
from multi_task_orchestrator.engine.document.models import Mode, TaskSpec
from multi_task_orchestrator.engine.document.plan import dependency_graph
from multi_task_orchestrator.engine.expressions import ExpressionError, Reference, find_references
from multi_task_orchestrator.engine.issues import Issue, Location, did_you_mean, format_loc


def check_references(doc: ExaminedDocument) -> list[Issue]:
    """The problems of every ``${...}`` in the tasks' configs and for_each, in document order."""
    issues = []
    ancestor_cache: dict[str, dag.Ancestors] = {}
    reach = dag.Reach(dependency_graph(doc.graph))
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
            written = value_at(task.for_each if inside_for_each else task.config, loc[3:])
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


def check_secrets_in_vars(doc: ExaminedDocument, extra_vars: Mapping[str, Any]) -> list[Issue]:
    """A ``${vault.NAME}`` in a var, the document's or one given with the run: a var is put
    in as text, and a secret is revealed only where a task's config names it, so it would be
    used as the text ``${vault.NAME}`` (or refused when a task sends it)."""
    data = doc.raw.data if isinstance(doc.raw.data, dict) else {}
    found: list[tuple[Location, Reference | ExpressionError, str | None]] = [
        (loc, ref, None) for loc, ref in find_references(data.get("vars"), ("vars",))
    ]
    for name, value in extra_vars.items():
        found += [(loc, ref, name) for loc, ref in find_references(value, ("vars", name))]
    issues = []
    for loc, ref, given in found:
        if isinstance(ref, ExpressionError) or ref.kind != "vault":
            continue
        shown = "${" + ref.text + "}"
        where = f"the var '{given}' given with the run" if given is not None else "vars"
        message = (
            f"'{shown}' cannot be used in {where}: secrets are revealed only where a task's "
            f"config names them, so it would be used as the text '{shown}'"
        )
        hint = (
            f"write '{shown}' in the config field that uses it; secrets may be used in "
            + doc.secrets.where_revealed()
        )
        # a var given with the run has no place in the document's text
        issues.append(
            doc.raw.issue(message, loc, hint) if given is None else Issue(message, (), hint)
        )
    return issues


def check_secrets_in_labels(doc: ExaminedDocument) -> list[Issue]:
    """A ``${vault.NAME}`` in the ``name`` or ``description`` of the document or of a task:
    nothing is replaced there, so it would be shown as the text ``${vault.NAME}``."""
    data = doc.raw.data if isinstance(doc.raw.data, dict) else {}
    places: list[tuple[Any, Location]] = [(data.get(field), (field,)) for field in _LABELS]
    listed = data.get("tasks")
    for index, task in enumerate(listed if isinstance(listed, list) else []):
        if isinstance(task, dict):
            places += [(task.get(field), ("tasks", index, field)) for field in _LABELS]
    issues = []
    for value, where in places:
        if not isinstance(value, str) or "${" not in value:
            continue
        for loc, ref in find_references(value, where):
            if isinstance(ref, ExpressionError) or ref.kind != "vault":
                continue
            shown = "${" + ref.text + "}"
            message = (
                f"'{shown}' cannot be used in a {loc[-1]}: a {loc[-1]} is shown as written, "
                f"so it would be the text '{shown}'"
            )
            hint = (
                f"remove it from the {loc[-1]}; secrets may be used in "
                + doc.secrets.where_revealed()
            )
            issues.append(doc.raw.issue(message, loc, hint))
    return issues


_LABELS = ("name", "description")


def _reference_problem(
    doc: ExaminedDocument,
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
    doc: ExaminedDocument, task: TaskSpec, ref: Reference, shown: str, loc: Location
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


def check_other_syntaxes(doc: ExaminedDocument) -> list[Issue]:
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


def _other_syntaxes(
    doc: ExaminedDocument, task: TaskSpec, text: str
) -> Iterator[tuple[str, str, str]]:
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


def _texts(value: Any, loc: Location) -> list[tuple[Location, str]]:
    """Every string in ``value`` that holds ``$`` or ``{{``, with its location, in document
    order."""
    found: list[tuple[Location, str]] = []
    _collect_texts(value, tuple(loc), found)
    return found


def _collect_texts(value: Any, loc: Location, out: list[tuple[Location, str]]) -> None:
    # Strings inside a container are judged in its loop, as ``find_references`` does: most
    # values of a config are plain, and a location made for each cost more than the rest.
    if isinstance(value, str):
        if "$" in value or "{{" in value:
            out.append((loc, value))
    elif isinstance(value, dict):
        for key, child in value.items():
            if isinstance(child, str):
                if "$" in child or "{{" in child:
                    out.append(((*loc, key), child))
            elif isinstance(child, dict | list):
                _collect_texts(child, (*loc, key), out)
    elif isinstance(value, list):
        for position, child in enumerate(value):
            if isinstance(child, str):
                if "$" in child or "{{" in child:
                    out.append(((*loc, position), child))
            elif isinstance(child, dict | list):
                _collect_texts(child, (*loc, position), out)


# --- helpers ------------------------------------------------------------------------------


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


def _unknown_root_hint(doc: ExaminedDocument, ref: Reference) -> str:
    root = ref.root
    if doc.var_names and root in doc.var_names:
        return f"'{root}' is a variable: write ${{vars.{root}}}"
    suggestion = did_you_mean(root, doc.known_ids)
    if suggestion is None:
        return doc.known_tasks_hint()
    if ref.expression:
        return suggestion
    target = suggestion.split("'")[1]
    return f"{suggestion} write ${{{target}.{ref.path or 'output'}}}"


def holds_reference(value: Any) -> bool:
    """Whether ``value`` (from ``value_at``) holds a ``${...}`` reference."""
    return value is not _MISSING and bool(find_references(value))


_MISSING = object()


def value_at(value: Any, loc: Iterable[str | int]) -> Any:
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
