"""Validation of an orchestration document: every problem in one pass, and the plan of a valid
one.

``validate`` reports each problem with its line, column and a fix hint, sorted by position: the
document's own errors (``building``), then what only its tasks together show — duplicate ids,
unknown and forward dependencies, cycles with their path, unknown limits, fields that do not
apply, task types disabled or without a runner (``checks``); ``${...}`` references a task cannot
see and secrets it cannot use (``references``); runner configs that do not fit
(``runner_configs``). A valid document also gets its ``Plan`` (``plan``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from multi_task_orchestrator.engine.document import checks, references
from multi_task_orchestrator.engine.document.building import build
from multi_task_orchestrator.engine.document.examined import (
    ExaminedDocument,
    KnownSecrets,
    SecretNames,
)
from multi_task_orchestrator.engine.document.loader import (
    MAX_DOCUMENT_BYTES,
    MAX_NESTING_DEPTH,
    RawDocument,
    check_vars,
    load_source,
    too_many_tasks,
)
from multi_task_orchestrator.engine.document.models import Orchestration
from multi_task_orchestrator.engine.document.notify_checks import check_notify
from multi_task_orchestrator.engine.document.plan import Plan, make_plan
from multi_task_orchestrator.engine.document.runner_configs import check_configs
from multi_task_orchestrator.engine.issues import DocumentError, Issue


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
    ``max_document_bytes``, or nested deeper than ``max_depth`` (``extra_vars`` alike), is
    refused before it is read;
    a document with more than ``max_tasks`` tasks is refused as soon as they are counted.
    """
    try:
        check_vars(extra_vars or {}, max_bytes=max_document_bytes, max_depth=max_depth)
        raw = (
            source
            if isinstance(source, RawDocument)
            else load_source(
                source, max_bytes=max_document_bytes, max_depth=max_depth, max_tasks=max_tasks
            )
        )
    except DocumentError as exc:
        return Validation(None, _sorted(exc.issues), None)
    too_many = _too_many_tasks(raw, max_tasks)
    if too_many is not None:
        return Validation(None, [too_many], None)
    extra = dict(extra_vars or {})

    orchestration, _, issues = build(raw)
    doc = ExaminedDocument.examine(raw, orchestration, extra)
    doc.secrets = KnownSecrets(secret_names, secret_fields)
    issues += checks.check_duplicates(doc)
    issues += checks.check_dependencies(doc)
    issues += checks.check_cycles(doc)
    issues += references.check_references(doc)
    issues += references.check_secrets_in_vars(doc, extra)
    issues += references.check_secrets_in_labels(doc)
    issues += references.check_other_syntaxes(doc)
    issues += checks.check_limits(doc)
    issues += check_notify(doc)
    issues += checks.check_task_fields(doc)
    if extra:
        issues += checks.check_given_vars(doc, extra)
    if disabled_types:
        issues += checks.check_disabled(doc, disabled_types)
    if available_types is not None:
        issues += checks.check_types(doc, available_types, require_runners, disabled_types or {})
    if runner_configs:
        issues += check_configs(doc, runner_configs)

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
