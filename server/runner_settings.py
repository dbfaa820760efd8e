"""The runners' settings as settings: each registered runner's ``settings_model``, from the
environment like every other setting.

A runner's settings field ``FIELD`` is read from ``ORCHESTRATOR_<TYPE>_<FIELD>`` (upper case;
in ``<TYPE>`` anything but letters and digits becomes ``_``), or from the variable the field
names as ``json_schema_extra={"env": "ORCHESTRATOR_..."}`` — the documented names that predate
this scheme (``ORCHESTRATOR_ALLOW_SHELL``, ``ORCHESTRATOR_BROWSER_PATH``...). Runners that share
a settings model (``http`` and ``multi_publish``) share its variables; a field with
``exclude=True`` is not a setting.

``with_runner_fields(base)`` gives the settings model one field per variable (named as the
variable without ``ORCHESTRATOR_``, in lower case), so reading the environment, the error for
a bad value and the README's configuration table treat them like every other setting.
``runner_settings`` turns those fields back into each runner's settings object, as the engine
hands it to the runner; ``explicit_runner_settings`` keeps only the ones set explicitly (what a
Dask worker's own environment sets, which wins over the server's settings there). A plug-in
setting whose variable another setting already has is ignored with a warning (its runner gets
that field's default): a plug-in cannot change what a documented variable means.
"""

from __future__ import annotations

import copy
import functools
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, create_model
from pydantic.fields import FieldInfo

from multi_task_orchestrator.engine import registry

PREFIX = "ORCHESTRATOR_"
ModelT = TypeVar("ModelT", bound=BaseModel)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunnerSetting:
    """One environment variable of the runners' settings, and the field it fills."""

    key: str  # the settings model's field: the variable without the prefix, in lower case
    variable: str
    model: type[BaseModel]
    field: str


def variable_of(type_name: str, field: str, info: FieldInfo) -> str:
    """The environment variable of a runner's settings field."""
    extra = info.json_schema_extra
    declared = extra.get("env") if isinstance(extra, dict) else None
    if isinstance(declared, str) and re.fullmatch(rf"{PREFIX}[A-Z0-9_]+", declared):
        return declared
    if declared is not None:
        log.warning(
            "the %s runner's setting %s names the variable %r, which does not start with %s; "
            "it is read from the derived name",
            type_name,
            field,
            declared,
            PREFIX,
        )
    return PREFIX + re.sub(r"[^A-Za-z0-9]", "_", f"{type_name}_{field}").upper()


@functools.cache
def declared(reserved: frozenset[str]) -> tuple[RunnerSetting, ...]:
    """Every runner setting, in the registry's order of types, leaving out any whose key is in
    ``reserved`` (the settings model's own fields) or taken by an earlier runner."""
    found: dict[str, RunnerSetting] = {}
    models: set[type[BaseModel]] = set()
    classes = registry.runner_classes()
    for type_name in registry.type_names():
        model = classes[type_name].settings_model
        if model is None or model in models:
            continue
        models.add(model)
        for field, info in model.model_fields.items():
            if info.exclude:
                continue
            variable = variable_of(type_name, field, info)
            key = variable.removeprefix(PREFIX).lower()
            if key in reserved or key in found:
                log.warning(
                    "the %s runner's setting %s is ignored: %s is already another setting",
                    type_name,
                    field,
                    variable,
                )
                continue
            found[key] = RunnerSetting(key, variable, model, field)
    return tuple(found.values())


def with_runner_fields(base: type[ModelT]) -> type[ModelT]:
    """``Settings``: ``base`` with one more field per runner setting, described as
    ``VARIABLE: meaning``."""
    fields: dict[str, Any] = {}
    for setting in declared(frozenset(base.model_fields)):
        info = copy.copy(setting.model.model_fields[setting.field])
        info.description = f"{setting.variable}: {info.description or ''}"
        fields[setting.key] = (info.annotation, info)
    return create_model(
        "Settings",
        __base__=base,
        __module__=base.__module__,
        __doc__=f"Every setting: {base.__name__}'s and the registered runners' settings.",
        **fields,
    )


def runner_settings(settings: BaseModel, reserved: Iterable[str]) -> dict[str, BaseModel]:
    """Each runner's settings object, by task type, from ``settings``' runner fields."""
    values: dict[type[BaseModel], dict[str, Any]] = {}
    for setting in declared(frozenset(reserved)):
        values.setdefault(setting.model, {})[setting.field] = getattr(settings, setting.key)
    built = {model: model.model_validate(given, by_name=True) for model, given in values.items()}
    return {
        name: built[model] if model in built else model()
        for name, cls in registry.runner_classes().items()
        if (model := cls.settings_model) is not None
    }


def explicit_runner_settings(
    settings: BaseModel, reserved: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The runner settings given explicitly (by the environment or the caller), by task type
    and field; the ones left at their defaults are not there."""
    chosen: dict[type[BaseModel], dict[str, Any]] = {}
    for setting in declared(frozenset(reserved)):
        if setting.key in settings.model_fields_set:
            chosen.setdefault(setting.model, {})[setting.field] = getattr(settings, setting.key)
    return {
        name: dict(chosen[model])
        for name, cls in registry.runner_classes().items()
        if (model := cls.settings_model) is not None and model in chosen
    }


def settings_of(settings: dict[str, BaseModel], model: type[ModelT]) -> ModelT:
    """The runner settings of type ``model`` among ``settings`` (its defaults if none)."""
    for value in settings.values():
        if isinstance(value, model):
            return value
    return model()
