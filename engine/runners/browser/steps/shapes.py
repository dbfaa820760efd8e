"""How a step is written: the shorthands (``- click: "#b"``, ``- screenshot``) read into the
step models, and the ``Step`` type that validates a step (and describes it in JSON Schema)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from multi_task_orchestrator.engine.issues import did_you_mean
from multi_task_orchestrator.engine.runners.browser.steps.models import (
    STEP_MODELS,
    AssertStep,
    BaseStep,
    CheckStep,
    ClickStep,
    EvaluateStep,
    ExtractStep,
    FillStep,
    GotoStep,
    HoverStep,
    PdfStep,
    PressStep,
    ScreenshotStep,
    ScrollStep,
    SelectStep,
    TypeStep,
    WaitForStep,
)


def _step_shape(value: Any) -> Any:
    """``{click: "#b"}``, ``{click: {selector: "#b"}}``, ``{click: "#b", timeout: 2s}`` or
    ``"screenshot"`` -> ``{"kind": "click", "selector": "#b", ...}``."""
    if isinstance(value, str):
        _model_for(value)
        return {"kind": value}
    if not isinstance(value, Mapping) or "kind" in value:
        return value
    kinds = [key for key in value if key in STEP_MODELS]
    if len(kinds) != 1:
        if kinds:
            problem = f"a step does one thing; this one names {', '.join(kinds)}"
            hint = "split it into one step per kind"
        else:
            unknown = next((str(key) for key in value if str(key) not in ("timeout",)), "")
            problem = f"unknown step '{unknown}'" if unknown else "the step has no kind"
            hint = did_you_mean(unknown, STEP_MODELS) or f"steps: {', '.join(STEP_MODELS)}"
        raise PydanticCustomError("browser_step", "{problem}", {"problem": problem, "hint": hint})
    kind = kinds[0]
    model = STEP_MODELS[kind]
    options = {key: option for key, option in value.items() if key != kind}
    argument = value[kind]
    if isinstance(argument, Mapping):
        return {"kind": kind, **argument, **options}
    if argument is None:
        return {"kind": kind, **options}
    if model.main is None:
        fields = [name for name in model.model_fields if name not in ("kind", "timeout")]
        raise PydanticCustomError(
            "browser_step",
            "'{kind}' takes a mapping of options",
            {"kind": kind, "hint": f"write {kind}: {{{', '.join(f'{n}: ...' for n in fields)}}}"},
        )
    return {"kind": kind, model.main: argument, **options}


def _model_for(kind: str) -> type[BaseStep]:
    model = STEP_MODELS.get(kind)
    if model is None:
        hint = did_you_mean(kind, STEP_MODELS) or f"steps: {', '.join(STEP_MODELS)}"
        raise PydanticCustomError(
            "browser_step", "unknown step '{kind}'", {"kind": kind, "hint": hint}
        )
    return model


class _StepShorthands:
    """Adds the shapes ``_step_shape`` accepts to the JSON Schema of a step, so an editor
    accepts ``- click: "#b"``, ``- extract: {selector: ...}`` and ``- screenshot``."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        union = handler(core_schema)
        mapping = union.get("discriminator", {}).get("mapping", {})
        shorthands: list[JsonSchemaValue] = [{"enum": list(STEP_MODELS)}]
        for kind, model in STEP_MODELS.items():
            options = {"$ref": mapping[kind]} if kind in mapping else {"type": "object"}
            argument: list[JsonSchemaValue] = [options, {"type": "null"}]
            if model.main is not None and kind in mapping:
                resolved = handler.resolve_ref_schema({"$ref": mapping[kind]})
                argument.append(resolved["properties"][model.main])
            shorthands.append(
                {
                    "type": "object",
                    "properties": {kind: {"anyOf": argument}, "timeout": {}},
                    "required": [kind],
                    "additionalProperties": False,
                }
            )
        return {"anyOf": [union, *shorthands]}


Step = Annotated[
    GotoStep
    | ClickStep
    | FillStep
    | TypeStep
    | PressStep
    | SelectStep
    | CheckStep
    | HoverStep
    | ScrollStep
    | WaitForStep
    | ExtractStep
    | ScreenshotStep
    | PdfStep
    | EvaluateStep
    | AssertStep,
    Field(discriminator="kind"),
    BeforeValidator(_step_shape),
    _StepShorthands(),
]
