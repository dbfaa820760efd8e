"""The document's JSON Schema for editors, with each task type's ``config`` schema.

``orchestrator schema`` prints it. A task's ``config`` is checked against the config model of
its ``type`` (canonical name or alias) through an ``if``/``then`` per type, so an editor can
complete and check configs. Anywhere in a config a ``${...}`` reference may stand for a value
(it is judged once resolved, as validation does), so every config value also accepts one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from multi_task_orchestrator.engine import registry
from multi_task_orchestrator.engine.document.models import (
    DEPENDENCY_SPELLINGS,
    ErrorClass,
    Orchestration,
    error_class_names,
)

REFERENCE = "Reference"
_REFERENCE_SCHEMA = {
    "type": "string",
    "pattern": r"\$\{",
    "description": "a ${...} reference, resolved when the task runs",
}
_KEPT_ON_WRAPPER = ("title", "description", "default")


def document_json_schema(configs: Mapping[str, type[BaseModel]] | None = None) -> dict[str, Any]:
    """The JSON Schema for a document, with or without the ``orchestration:`` wrapper.

    ``configs`` maps canonical task types to their runners' config models; each becomes the
    schema of ``config`` for tasks of that type and its aliases.
    """
    configs = dict(configs or {})
    models: list[type[BaseModel]] = [Orchestration, *configs.values()]
    refs, top = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/$defs/{model}"
    )
    defs: dict[str, Any] = top["$defs"]
    _error_classes(defs)
    _accept_task_shorthands(defs["TaskSpec"])
    if configs:
        config_refs = {name: refs[(model, "validation")] for name, model in configs.items()}
        _configs_by_type(defs, config_refs, set(defs) - _document_defs())
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Multi-Task Orchestrator document",
        "anyOf": [
            {"$ref": "#/$defs/Orchestration"},
            {
                "type": "object",
                "properties": {"orchestration": {"$ref": "#/$defs/Orchestration"}},
                "required": ["orchestration"],
                "additionalProperties": False,
            },
        ],
        "$defs": defs,
    }


def _document_defs() -> set[str]:
    """The definitions the document itself uses (those left alone by the config rewrite)."""
    schema = Orchestration.model_json_schema(ref_template="#/$defs/{model}")
    return {"Orchestration", "ErrorClass", *schema.get("$defs", {})}


def _error_classes(defs: dict[str, Any]) -> None:
    """Name the error classes ``retry.on`` accepts (the built-in ones and the runners')."""
    defs["RetryPolicy"]["properties"]["on"]["items"] = {"$ref": "#/$defs/ErrorClass"}
    defs["ErrorClass"] = {
        "description": ErrorClass.__doc__,
        "enum": list(error_class_names()),
        "title": "ErrorClass",
        "type": "string",
    }
    ordered = sorted(defs.items())
    defs.clear()
    defs.update(ordered)


def _accept_task_shorthands(task_schema: dict[str, Any]) -> None:
    """Say what the validation aliases and one-or-many fields accept, which pydantic's schema
    leaves out: ``depends_on`` / ``needs``, and one id in place of a list."""
    properties = task_schema["properties"]
    for name in ("dependencies", "limit"):
        listed = properties[name]
        properties[name] = {
            **{key: value for key, value in listed.items() if key not in ("type", "items")},
            "anyOf": [{"type": "array", "items": listed["items"]}, listed["items"]],
        }
    for spelling in DEPENDENCY_SPELLINGS[1:]:
        properties[spelling] = properties["dependencies"]


def _configs_by_type(
    defs: dict[str, Any], config_refs: Mapping[str, dict[str, Any]], config_defs: set[str]
) -> None:
    """Let every config value be a reference, and pick ``config``'s schema by ``type``."""
    for name in config_defs:
        defs[name] = _values_take_references(defs[name])
    defs[REFERENCE] = _REFERENCE_SCHEMA
    task = defs["TaskSpec"]
    names = [*registry.type_names(), *registry.aliases()]
    task["properties"]["type"] = {
        **task["properties"]["type"],
        # the engine also takes other spellings (case is ignored); editors complete these
        "anyOf": [{"enum": names}, {"type": "string"}],
    }
    task["allOf"] = [
        {
            "if": {
                "properties": {"type": {"enum": _spellings(task_type)}},
                "required": ["type"],
            },
            "then": {"properties": {"config": ref}},
        }
        for task_type, ref in config_refs.items()
    ]


def _spellings(task_type: str) -> list[str]:
    return [task_type, *registry.aliases_of(task_type)]


def _values_take_references(schema: Any) -> Any:
    """``schema`` with every value inside it (properties, items, map values) also accepting
    a ``${...}`` reference."""
    if not isinstance(schema, dict):
        return schema
    result = dict(schema)
    if isinstance(schema.get("properties"), dict):
        result["properties"] = {
            key: _or_reference(value) for key, value in schema["properties"].items()
        }
    if isinstance(schema.get("items"), dict):
        result["items"] = _or_reference(schema["items"])
    if isinstance(schema.get("prefixItems"), list):
        result["prefixItems"] = [_or_reference(item) for item in schema["prefixItems"]]
    if isinstance(schema.get("additionalProperties"), dict):
        result["additionalProperties"] = _or_reference(schema["additionalProperties"])
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list):
            result[key] = [_values_take_references(member) for member in schema[key]]
    return result


def _or_reference(schema: dict[str, Any]) -> dict[str, Any]:
    inner = _values_take_references(schema)
    wrapper = {key: inner[key] for key in _KEPT_ON_WRAPPER if key in inner}
    return {**wrapper, "anyOf": [inner, {"$ref": f"#/$defs/{REFERENCE}"}]}
