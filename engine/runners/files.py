"""The ``file_processing`` task type (aliases ``file``, ``files``): files in the workspace folder.

Every path is relative to the engine's workspace (``ORCHESTRATOR_WORKSPACE``, by default
``$ORCHESTRATOR_HOME/workspace``, created when first needed). A path that could lead out of it
is refused: one with a ``..`` part, an absolute path elsewhere, or one that leaves through a
symbolic link (the path is resolved and must stay inside). Files are then opened folder by
folder through directory descriptors without following any link (``workspace_fs``), so a folder
swapped for a link after the check fails the task instead of leading out. Writing to the
workspace itself (``.``) is refused; a write or append producing more than
``ORCHESTRATOR_MAX_WRITE_BYTES`` fails with class ``too_large``; JSON nested deeper than
``engine.limits.MAX_DATA_DEPTH`` fails its read with class ``too_deep``.

Actions:

- ``read`` — ``path``; the output is the file's data.
- ``write`` — ``path`` and ``content``; replaces the file atomically (a temporary file, then a
  rename), creating folders as needed. Output: ``{path, format, bytes}``.
- ``append`` — ``path`` and ``content``, added at the end (the file is created if missing): text
  is appended; JSONL gets one line per item (``content`` a list) or one line; CSV gets rows under
  the existing header; JSON needs the file to hold a list, which is extended (or gets one item).
  Appends to one file from parallel tasks are serialised; each is an atomic rewrite.
- ``list`` — ``path`` (default the workspace itself): ``[{name, path, type, size}]`` of a folder.
- ``glob`` — ``pattern`` (``inbox/*.csv``, ``**/*.json``): the matching files' paths, sorted, so
  ``for_each: "${find.output}"`` with ``path: "${item}"`` processes them in parallel.

Formats (``format``, or by extension: ``.json``, ``.jsonl``/``.ndjson``, ``.csv``, anything else
text): ``json`` — any value; ``jsonl`` — a list, one JSON value per line; ``csv`` — a list of
objects, the header from their keys in first-seen order (values read back as text; lists and
objects written as JSON text); ``text`` — a string.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ByteSize, Field, model_validator
from pydantic_core import PydanticCustomError

from multi_task_orchestrator.engine.errors import ConfigError, TaskError
from multi_task_orchestrator.engine.limits import (
    DEFAULT_MAX_WRITE_BYTES,
    MAX_DATA_DEPTH,
    nests_deeper,
    show_bytes,
)
from multi_task_orchestrator.engine.runners.base import RunContext, Runner, RunnerConfig
from multi_task_orchestrator.engine.runners.workspace_fs import read_file, write_file

Action = Literal["read", "write", "append", "list", "glob"]
Format = Literal["json", "jsonl", "csv", "text"]
FORMAT_BY_EXTENSION: dict[str, Format] = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}
MAX_READ_BYTES = 64 * 1024 * 1024

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


# --- paths ----------------------------------------------------------------------------------


def workspace_root(ctx: RunContext) -> Path:
    """The workspace, resolved and created."""
    if ctx.workspace is None:
        raise ConfigError("no workspace folder is configured (set ORCHESTRATOR_WORKSPACE)")
    root = ctx.workspace.expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def inside(root: Path, text: str, what: str = "path") -> Path:
    """The resolved file ``text`` names inside ``root``; ConfigError when it would leave it."""
    if not text.strip() or "\x00" in text:
        raise ConfigError(f"the {what} '{text}' is empty or not a file name")
    given = Path(text)
    if ".." in given.parts:
        raise ConfigError(
            f"refused {what} '{text}': '..' is not allowed; paths stay inside the workspace {root}"
        )
    if given.is_absolute() and not Path(os.path.abspath(given)).is_relative_to(root):
        raise ConfigError(
            f"refused {what} '{text}': an absolute path outside the workspace {root}; "
            "give a path relative to the workspace"
        )
    resolved = (root / given).resolve()
    if not resolved.is_relative_to(root):
        raise ConfigError(
            f"refused {what} '{text}': a symbolic link leads out of the workspace {root} "
            f"(to {resolved})"
        )
    return resolved


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def file_format(config: FilesConfig, path: Path) -> Format:
    return config.format or FORMAT_BY_EXTENSION.get(path.suffix.lower(), "text")


# --- formats --------------------------------------------------------------------------------


def parse(text: str, fmt: Format, shown: str) -> Any:
    """The data of a file's text."""
    if fmt == "text":
        return text
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(text, newline="")))
    if fmt == "json":
        try:
            return _shallow(json.loads(text), shown)
        except json.JSONDecodeError as exc:
            raise TaskError(
                f"{shown} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            ) from None
        except RecursionError:
            raise _too_deep(shown) from None
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                items.append(_shallow(json.loads(line), shown))
            except json.JSONDecodeError as exc:
                raise TaskError(f"{shown} line {number} is not valid JSON: {exc.msg}") from None
            except RecursionError:
                raise _too_deep(shown) from None
    return items


def _shallow(data: Any, shown: str) -> Any:
    if nests_deeper(data, MAX_DATA_DEPTH):
        raise _too_deep(shown)
    return data


def _too_deep(shown: str) -> TaskError:
    return TaskError(
        f"{shown} holds JSON nested more than {MAX_DATA_DEPTH} levels deep; it is refused so "
        "that nothing walking it can exhaust the stack (read it with format: text)",
        "too_deep",
    )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


def render(content: Any, fmt: Format, shown: str) -> str:
    """The text of a file holding ``content``."""
    if fmt == "json":
        return json.dumps(content, ensure_ascii=False, indent=2) + "\n"
    if fmt == "jsonl":
        if not isinstance(content, list):
            raise ConfigError(
                f"{shown}: format jsonl writes a list (one line per item), not {_kind(content)}"
            )
        return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in content)
    if fmt == "csv":
        rows = _rows(content, shown)
        return _csv_text(rows, _header(rows))
    if not isinstance(content, str):
        raise ConfigError(
            f"{shown}: format text writes a string, not {_kind(content)}; use format: json"
        )
    return content


def _rows(content: Any, shown: str) -> list[dict[str, Any]]:
    rows = [content] if isinstance(content, dict) else content
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ConfigError(f"{shown}: format csv writes a list of objects, not {_kind(content)}")
    return rows


def _header(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(key) for row in rows for key in row))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _csv_text(rows: list[dict[str, Any]], header: list[str], *, header_line: bool = True) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    if header_line:
        writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in header])
    return buffer.getvalue()


# --- the blocking work, run in a thread -----------------------------------------------------


def _under(root: Path, path: Path) -> PurePosixPath:
    return PurePosixPath(path.relative_to(root).as_posix()) if path != root else PurePosixPath()


def _read_text(
    root: Path, path: Path, encoding: str, shown: str, *, missing: str | None = None
) -> str:
    """The text of ``path`` (read without following links); ``missing`` when it does not exist
    (by default that is an error)."""
    try:
        content = read_file(str(root), _under(root, path), shown, MAX_READ_BYTES)
        if content is None:
            if missing is None:
                raise TaskError(f"{shown} does not exist")
            return missing
        return io.TextIOWrapper(io.BytesIO(content), encoding=encoding, newline="").read()
    except IsADirectoryError:
        raise TaskError(f"{shown} is a folder, not a file (use action: list)") from None
    except UnicodeDecodeError:
        raise TaskError(f"{shown} is not {encoding} text (set encoding)") from None
    except LookupError:
        raise ConfigError(f"unknown encoding '{encoding}'") from None


def _write(root: Path, path: Path, text: str, encoding: str, shown: str, limit: int) -> int:
    try:
        data = text.encode(encoding)
    except LookupError:
        raise ConfigError(f"unknown encoding '{encoding}'") from None
    except UnicodeEncodeError:
        raise TaskError(f"{shown}: the content cannot be written as {encoding}") from None
    if len(data) > limit:
        raise TaskError(
            f"{shown}: {show_bytes(len(data))} to write, more than ORCHESTRATOR_MAX_WRITE_BYTES "
            f"({show_bytes(limit)}); write less, or raise it where the orchestrator runs",
            "too_large",
        )
    try:
        write_file(str(root), _under(root, path), data, shown)
    except IsADirectoryError:
        raise TaskError(f"{shown} is a folder; give a file name") from None
    except NotADirectoryError:
        raise TaskError(f"{shown}: a part of the path is a file, not a folder") from None
    return len(data)


def _appended(existing: str, content: Any, fmt: Format, shown: str) -> str:
    """The whole new text of a file after appending ``content``."""
    if fmt == "text":
        return existing + render(content, "text", shown)
    if fmt == "jsonl":
        lines = render(content if isinstance(content, list) else [content], "jsonl", shown)
        return existing + ("\n" if existing and not existing.endswith("\n") else "") + lines
    if fmt == "json":
        current = parse(existing, "json", shown) if existing.strip() else []
        if not isinstance(current, list):
            raise TaskError(
                f"{shown} holds {_kind(current)}; appending to a JSON file needs a list in it"
            )
        current.extend(content if isinstance(content, list) else [content])
        return render(current, "json", shown)
    rows = _rows(content, shown)
    header = next(csv.reader(io.StringIO(existing, newline="")), None) if existing else None
    if header is None:
        return _csv_text(rows, _header(rows))
    unknown = [column for column in _header(rows) if column not in header]
    if unknown:
        raise TaskError(
            f"{shown}: column(s) {', '.join(unknown)} are not in the file's header "
            f"({', '.join(header)})"
        )
    separator = "\n" if not existing.endswith("\n") else ""
    return existing + separator + _csv_text(rows, header, header_line=False)


def _listing(root: Path, folder: Path, shown: str) -> list[dict[str, Any]]:
    if not folder.is_dir():
        raise TaskError(
            f"{shown} is not a folder" if folder.exists() else f"{shown} does not exist"
        )
    entries = []
    for entry in sorted(folder.iterdir(), key=lambda path: path.name):
        if not entry.resolve().is_relative_to(root):
            continue  # a link out of the workspace: not shown
        kind = "directory" if entry.is_dir() else "file" if entry.is_file() else "other"
        entries.append(
            {
                "name": entry.name,
                "path": _relative(root, entry),
                "type": kind,
                "size": entry.stat().st_size if kind == "file" else None,
            }
        )
    return entries


def _matches(root: Path, pattern: str) -> tuple[list[str], list[str]]:
    """Files matching ``pattern`` (relative paths, sorted), and the links out that were left out."""
    found, outside = [], []
    for match in root.glob(pattern):
        if not match.is_file():
            continue
        if match.resolve().is_relative_to(root):
            found.append(_relative(root, match))
        else:
            outside.append(_relative(root, match))
    return sorted(found), sorted(outside)


# --- the runner -----------------------------------------------------------------------------


class FileSettings(BaseModel):
    """The ``file_processing`` runner's settings."""

    max_write_bytes: ByteSize = Field(
        ByteSize(DEFAULT_MAX_WRITE_BYTES),
        gt=0,
        description="the largest file a file_processing write or append produces (e.g. 64MiB); "
        "a larger one is refused (class too_large)",
        json_schema_extra={"env": "ORCHESTRATOR_MAX_WRITE_BYTES"},
    )


class FileProcessingRunner(Runner[FilesConfig]):
    """Reads, writes, appends, lists and globs inside the workspace; see the module docstring."""

    type_name: ClassVar[str] = "file_processing"
    aliases: ClassVar[tuple[str, ...]] = ("file", "files")
    listing_rank: ClassVar[int] = 40
    config_model: ClassVar[type[FilesConfig]] = FilesConfig
    settings_model: ClassVar[type[FileSettings]] = FileSettings
    summary: ClassVar[str] = (
        "Reads, writes, appends, lists or globs files in the workspace folder as JSON, JSONL, "
        "CSV or text; a glob's matches can feed for_each. Paths cannot leave the workspace."
    )
    example: ClassVar[dict[str, Any]] = {
        "id": "save_results",
        "type": "file_processing",
        "config": {
            "action": "write",
            "path": "out/results.json",
            "content": "${merge_content.output}",
        },
        "dependencies": ["merge_content"],
    }

    def __init__(self, settings: FileSettings | Mapping[str, Any] | None = None) -> None:
        super().__init__(settings)
        self._append_locks: dict[Path, asyncio.Lock] = {}

    async def run(self, config: FilesConfig, ctx: RunContext) -> Any:
        root = workspace_root(ctx)
        if config.action == "glob":
            pattern = config.pattern or ""
            if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
                raise ConfigError(
                    f"refused pattern '{pattern}': patterns are relative to the workspace {root} "
                    "and cannot contain '..'"
                )
            found, outside = await asyncio.to_thread(_matches, root, pattern)
            if outside:
                ctx.log(
                    f"left out {len(outside)} link(s) leading out of the workspace: "
                    + ", ".join(outside[:5]),
                    level="warning",
                )
            ctx.log(f"glob '{pattern}': {len(found)} file(s)")
            return found
        path = inside(root, config.path or ".")
        shown = f"'{config.path or '.'}'"
        if config.action == "list":
            return await asyncio.to_thread(_listing, root, path, shown)
        fmt = file_format(config, path)
        if config.action == "read":
            text = await asyncio.to_thread(_read_text, root, path, config.encoding, shown)
            data = parse(text, fmt, shown)
            ctx.log(f"read {shown} ({fmt})")
            return data
        limit = int(self.settings_as(FileSettings).max_write_bytes)
        if config.action == "write":
            text = render(config.content, fmt, shown)
            size = await asyncio.to_thread(_write, root, path, text, config.encoding, shown, limit)
        else:
            lock = self._append_locks.setdefault(path, asyncio.Lock())
            async with lock:
                size = await asyncio.to_thread(self._append, root, path, config, fmt, shown, limit)
        ctx.log(f"{config.action} {shown} ({fmt}, {size} bytes)")
        return {"path": _relative(root, path), "format": fmt, "bytes": size}

    @staticmethod
    def _append(
        root: Path, path: Path, config: FilesConfig, fmt: Format, shown: str, limit: int
    ) -> int:
        existing = _read_text(root, path, config.encoding, shown, missing="")
        text = _appended(existing, config.content, fmt, shown)
        return _write(root, path, text, config.encoding, shown, limit)


RUNNER = FileProcessingRunner
