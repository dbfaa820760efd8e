"""Strict tool arguments, for every tool the server offers.

The SDK builds each tool's argument model from its signature and ignores arguments it does not
know; its validation errors quote the input (pydantic's ``input_value=``). Here every tool is
built so that an unknown argument is refused with a did-you-mean, the input schema says
``additionalProperties: false``, and no argument error echoes a value the caller sent: a secret
passed to ``vault_set`` with a mistake elsewhere must not come back into the model's context.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.types import ToolAnnotations
from pydantic import ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from multi_task_orchestrator.engine import did_you_mean


class StrictFuncMetadata(FuncMetadata):
    """Refuses arguments the tool does not take, naming the closest one it does."""

    def validate_arguments(self, arguments_to_validate: dict[str, Any]) -> dict[str, Any]:
        known = {field.alias or name for name, field in self.arg_model.model_fields.items()}
        unknown = [name for name in arguments_to_validate if name not in known]
        if unknown:
            raise ValidationError.from_exception_data(
                self.arg_model.__name__,
                [_unknown_argument(name, sorted(known)) for name in unknown],
                hide_input=True,
            )
        return super().validate_arguments(arguments_to_validate)


def _unknown_argument(name: str, known: list[str]) -> InitErrorDetails:
    hint = did_you_mean(name, known) or ""
    takes = ", ".join(known) if known else "no arguments"
    return InitErrorDetails(
        type=PydanticCustomError(
            "unknown_argument",
            "unknown argument {name} (this tool takes: {takes}){hint}",
            {"name": repr(name), "takes": takes, "hint": f"; {hint}" if hint else ""},
        ),
        loc=(name,),
        input=None,
    )


def strict_tool(fn: Callable[..., Any], *, annotations: ToolAnnotations) -> Tool:
    """The tool for ``fn``, with strict arguments and errors that never quote an input."""
    tool = Tool.from_function(fn, annotations=annotations)
    loose = tool.fn_metadata
    arg_model: type[ArgModelBase] = type(
        loose.arg_model.__name__,
        (loose.arg_model,),
        {
            "model_config": ConfigDict(
                **{**loose.arg_model.model_config, "hide_input_in_errors": True}
            )
        },
    )
    tool.fn_metadata = StrictFuncMetadata(
        arg_model=arg_model,
        output_schema=loose.output_schema,
        output_model=loose.output_model,
        wrap_output=loose.wrap_output,
    )
    tool.parameters = {**tool.parameters, "additionalProperties": False}
    return tool
