"""What a ``file_processing`` task is configured with (``FilesConfig``: the action and the
fields it uses, checked against each other), and the runner's settings (``FileSettings``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ByteSize, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from multi_task_orchestrator.engine.limits import DEFAULT_MAX_WRITE_BYTES
from multi_task_orchestrator.engine.runners.base import RunnerConfig

Action = Literal["read", "write", "append", "list", "glob"]
Format = Literal["json", "jsonl", "csv", "text"]
FORMAT_BY_EXTENSION: dict[str, Format] = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}

_FIELDS_USED: dict[str, frozenset[str]] = {
    "read": frozenset({"path", "format", "encoding"}),
    "write": frozenset({"path", "format", "encoding", "content"}),
    "append": frozenset({"path", "format", "encoding", "content"}),
    "list": frozenset({"path"}),
    "glob": frozenset({"pattern"}),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "read": ("path",),
    "write": ("path", "content"),
    "append": ("path", "content"),
    "list": (),
    "glob": ("pattern",),
}


class FilesConfig(RunnerConfig):
    """Config of a ``file_processing`` task."""

    action: Action = Field(description="read, write, append, list or glob")
    path: str | None = Field(None, description="a path inside the workspace, e.g. out/report.csv")
    pattern: str | None = Field(None, description="glob: e.g. inbox/*.csv or **/*.json")
    format: Format | None = Field(
        None, description="json, jsonl, csv or text; by default from the file's extension"
    )
    content: Any = Field(None, description="write/append: the data, usually ${task.output}")
    encoding: str = Field("utf-8", description="the text encoding of the file")

    @field_validator("path")
    @classmethod
    def _names_a_file(cls, path: str | None, info: ValidationInfo) -> str | None:
        action = info.data.get("action")
        if path is None or action not in ("read", "write", "append"):
            return path
        if not path.strip():
            raise PydanticCustomError(
                "files_config", "the path is empty", {"hint": _EXAMPLES[action]}
            )
        if path.rsplit("/", 1)[-1] in ("", "."):
            raise PydanticCustomError(
                "files_config",
                "the path '{path}' names a folder; action '{action}' needs a file",
                {
                    "path": path,
                    "action": action,
                    "hint": "give a file name in it, e.g. out/items.json; "
                    "a folder's files are listed with action: list",
                },
            )
        return path

    @field_validator("pattern")
    @classmethod
    def _is_a_pattern(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return pattern
        if not pattern.strip():
            raise PydanticCustomError(
                "files_config", "the pattern is empty", {"hint": _EXAMPLES["glob"]}
            )
        for part in pattern.split("/"):
            if "**" in part and part != "**":
                raise PydanticCustomError(
                    "files_config",
                    "'**' must be a whole part of the pattern, not '{part}'",
                    {
                        "part": part,
                        "hint": "'**' matches folders at any depth: write **/*.json, not **.json",
                    },
                )
        return pattern

    @model_validator(mode="after")
    def _fits_action(self) -> FilesConfig:
        used = _FIELDS_USED[self.action]
        unused = sorted(self.model_fields_set - used - {"action"})
        if unused:
            raise PydanticCustomError(
                "files_config",
                "action '{action}' does not use '{name}'",
                {
                    "action": self.action,
                    "name": unused[0],
                    "hint": f"it uses: {', '.join(sorted(used))}",
                },
            )
        missing = [name for name in _REQUIRED[self.action] if name not in self.model_fields_set]
        if missing:
            raise PydanticCustomError(
                "files_config",
                "action '{action}' needs '{name}'",
                {"action": self.action, "name": missing[0], "hint": _EXAMPLES[self.action]},
            )
        return self


_EXAMPLES = {
    "read": "e.g. {action: read, path: data/items.json}",
    "write": 'e.g. {action: write, path: out/items.json, content: "${task.output}"}',
    "append": 'e.g. {action: append, path: out/log.jsonl, content: "${task.output}"}',
    "list": "e.g. {action: list, path: inbox}",
    "glob": "e.g. {action: glob, pattern: 'inbox/*.csv'}",
}


class FileSettings(BaseModel):
    """The ``file_processing`` runner's settings."""

    max_write_bytes: ByteSize = Field(
        ByteSize(DEFAULT_MAX_WRITE_BYTES),
        gt=0,
        description="the largest file a file_processing write or append produces (e.g. 64MiB); "
        "a larger one is refused (class too_large)",
        json_schema_extra={"env": "ORCHESTRATOR_MAX_WRITE_BYTES"},
    )
