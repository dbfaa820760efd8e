"""Strict, self-describing tools: every tool the server offers is built by ``strict_tool``.

The SDK builds each tool's argument model from its signature and ignores arguments it does not
know; its validation errors quote the input (pydantic's ``input_value=``). A tool built here:

- refuses an unknown argument with a did-you-mean, its input schema saying
  ``additionalProperties: false`` (tools without parameters too);
- reports argument mistakes as a list of problems, like document errors, never echoing a value
  the caller sent (a secret passed to ``vault_set`` must not come back into the model's context);
- has a top-level ``title`` and every annotation hint set explicitly (refused at build time
  otherwise), and a dedented description;
- answers with compact JSON text, null fields left out (``structuredContent`` stays complete).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from multi_task_orchestrator.engine import did_you_mean

_SURROGATE = re.compile("[\ud800-\udfff]")
_WALKED = 1000
HINTS = ("read_only_hint", "destructive_hint", "idempotent_hint", "open_world_hint")


class StrictFuncMetadata(FuncMetadata):
    """Refuses arguments the tool does not take; answers with compact JSON text."""

    def validate_arguments(self, arguments_to_validate: dict[str, Any]) -> dict[str, Any]:
        known = {field.alias or name for name, field in self.arg_model.model_fields.items()}
        unknown = [name for name in arguments_to_validate if name not in known]
        broken = [name for name, value in arguments_to_validate.items() if _lone_surrogate(value)]
        if broken:  # no UTF-8 text (the state database, the vault, an answer) can hold one
            raise ValidationError.from_exception_data(
                self.arg_model.__name__, [_not_unicode(name) for name in broken], hide_input=True
            )
        if not unknown:
            return super().validate_arguments(arguments_to_validate)
        problems = []
        try:  # the known arguments' problems are listed too, so one answer shows them all
            super().validate_arguments(
                {name: value for name, value in arguments_to_validate.items() if name in known}
            )
        except ValidationError as exc:
            problems = [
                InitErrorDetails(
                    type=PydanticCustomError(problem["type"], problem["msg"]),
                    loc=problem["loc"],
                    input=None,
                )
                for problem in exc.errors(include_input=False, include_url=False)
            ]
        raise ValidationError.from_exception_data(
            self.arg_model.__name__,
            problems + [_unknown_argument(name, sorted(known)) for name in unknown],
            hide_input=True,
        )

    def convert_result(self, result: Any) -> Any:
        converted = super().convert_result(result)
        if (
            isinstance(result, BaseModel)
            and not isinstance(result, CallToolResult)  # a tool's own answer is kept as it is
            and isinstance(converted, CallToolResult)
            and converted.structured_content is not None
        ):
            text = result.model_dump_json(by_alias=True, exclude_none=True)
            converted.content = [TextContent(type="text", text=text)]
        return converted


class StrictTool(Tool):
    """A tool whose argument errors read like document errors and quote no input."""

    async def run(
        self, arguments: dict[str, Any], context: Context[Any, Any], convert_result: bool = False
    ) -> Any:
        try:
            return await super().run(arguments, context, convert_result)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):  # the arguments did not validate
                raise ToolError(argument_problems(self.name, exc.__cause__)) from None
            raise


def argument_problems(tool: str, error: ValidationError) -> str:
    """Every argument problem, one per line, then what to do; no input value is quoted."""
    problems = error.errors(include_url=False, include_input=False, include_context=False)
    lines = "\n".join(
        f"- {'.'.join(str(part) for part in problem['loc']) or 'arguments'}: {problem['msg']}"
        for problem in problems
    )
    count = len(problems)
    return (
        f"The arguments of {tool} have {count} problem{'s' if count != 1 else ''}:\n{lines}\n"
        f"Fix them and call {tool} again (tools/list shows its input schema)."
    )


def _lone_surrogate(value: Any) -> bool:
    """Whether a string in ``value`` (keys included) holds half of a UTF-16 surrogate pair,
    as JSON's ``"\\ud800"`` makes. A large argument (a document given as an object) is left
    to its own checks (the document loader's) rather than walked here, on the event loop."""
    pending = [value]
    for _ in range(_WALKED):
        if not pending:
            return False
        item = pending.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _not_unicode(name: str) -> InitErrorDetails:
    return InitErrorDetails(
        type=PydanticCustomError(
            "not_unicode",
            "holds half of a UTF-16 surrogate pair (an escape such as \\ud800 with no other "
            "half), which is not Unicode text; send the whole character",
        ),
        loc=(name,),
        input=None,
    )


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


def read_only(title: str) -> ToolAnnotations:
    """The annotations of a tool that only reads this server's own state."""
    return ToolAnnotations(
        title=title,
        read_only_hint=True,
        destructive_hint=False,
        idempotent_hint=True,
        open_world_hint=False,
    )


def runs_tasks(title: str) -> ToolAnnotations:
    """The annotations of a tool that starts tasks (now or later): they may call any API (PUT,
    DELETE), send email, publish and overwrite files."""
    return ToolAnnotations(
        title=title,
        read_only_hint=False,
        destructive_hint=True,
        idempotent_hint=False,
        open_world_hint=True,
    )


def strict_tool(
    fn: Callable[..., Any], *, annotations: ToolAnnotations, description: str | None = None
) -> Tool:
    """The tool for ``fn``: strict arguments, errors that never quote an input, a title and
    every hint explicit (``annotations`` must set ``title`` and all four ``*_hint`` fields).

    ``description`` replaces the docstring, e.g. to state a limit this server is configured
    with; either is dedented.
    """
    missing = [hint for hint in HINTS if getattr(annotations, hint) is None]
    if not annotations.title or missing:
        absent = ", ".join((["title"] if not annotations.title else []) + missing)
        raise ValueError(
            f"tool {fn.__name__}: its annotations must set {absent} explicitly "
            "(conservatively: destructive and open-world when in doubt)"
        )
    tool = StrictTool.from_function(
        fn,
        title=annotations.title,
        description=inspect.cleandoc(description or fn.__doc__ or ""),
        annotations=annotations,
    )
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
