"""Each task's ``config`` checked against its runner's config model, with a 'did you mean' for
an unknown field; a value holding a ``${...}`` reference is left to be judged once resolved."""

from __future__ import annotations

import functools
import typing
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from multi_task_orchestrator.engine import registry
from multi_task_orchestrator.engine.document.building import issues_from_validation
from multi_task_orchestrator.engine.document.examined import ExaminedDocument
from multi_task_orchestrator.engine.document.references import holds_reference, value_at
from multi_task_orchestrator.engine.issues import Issue, did_you_mean

# Configs validated per call: one call for all would hold a model of every config at once
# (~0.7 KB each, 70 MB for 100,000 tasks); calls of 1,000 are as fast, one per config ~1.2x.
CHUNK = 1_000


def check_configs(doc: ExaminedDocument, models: Mapping[str, type[BaseModel]]) -> list[Issue]:
    """The problems in the configs of tasks whose type has a model in ``models``, in document
    order. The configs of one type are validated ``CHUNK`` to a call; only where that fails,
    each alone."""
    by_model: dict[type[BaseModel], list[tuple[int, dict[str, Any]]]] = {}
    for index, task in doc.entries:
        model = models.get(task.type)
        if model is not None:
            by_model.setdefault(model, []).append((index, task.config))
    issues = []
    for model, entries in by_model.items():
        adapter = _configs_adapter(model)
        for start in range(0, len(entries), CHUNK):
            chunk = entries[start : start + CHUNK]
            try:
                adapter.validate_python([config for _, config in chunk])
            except ValidationError:
                issues += _config_issues(doc, model, chunk)
    issues += _configs_of_invalid_tasks(doc, models)
    return sorted(issues, key=lambda issue: issue.loc[1])


def _configs_of_invalid_tasks(
    doc: ExaminedDocument, models: Mapping[str, type[BaseModel]]
) -> list[Issue]:
    """The config problems of tasks that are themselves invalid (an unknown field beside the
    config, a bad id), so that every problem is listed at once: those whose type is known and
    whose config is a mapping."""
    valid = {index for index, _ in doc.entries}
    listed = doc.raw.data.get("tasks") if isinstance(doc.raw.data, dict) else None
    issues = []
    for index, item in enumerate(listed if isinstance(listed, list) else []):
        if index in valid or not isinstance(item, dict) or not isinstance(item.get("type"), str):
            continue
        config = item.get("config", {})
        type_name = registry.canonical(item["type"])
        model = models.get(type_name) if type_name is not None else None
        if model is not None and isinstance(config, dict):
            issues += _config_issues(doc, model, [(index, config)])
    return issues


@functools.cache
def _configs_adapter(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    """Validates the configs of all tasks of one type in one call (built once per model)."""
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def _config_issues(
    doc: ExaminedDocument, model: type[BaseModel], entries: list[tuple[int, dict[str, Any]]]
) -> list[Issue]:
    """The problems in the configs of ``entries``, each config validated on its own."""
    issues = []
    for index, config in entries:
        try:
            model.model_validate(config)
        except ValidationError as exc:
            found = issues_from_validation(exc, doc.raw, ("tasks", index, "config"))
            for error, issue in zip(exc.errors(include_url=False), found, strict=True):
                if error["type"] == "extra_forbidden":
                    # spec's hint names the document's fields; name the runner config's instead
                    hint = _config_field_hint(model, error["loc"])
                    issues.append(replace(issue, hint=hint))
                # a value holding a reference can only be judged once it is resolved; but a
                # secret refused where it stands (an evaluate script's) is refused as written
                elif error["type"] == "secret_refused" or not holds_reference(
                    value_at(config, error["loc"])
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
