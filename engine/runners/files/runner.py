"""The ``file_processing`` runner: it checks the task's path or pattern against the workspace,
does the action's blocking work in a thread, and serialises appends to one file."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from multi_task_orchestrator.engine.errors import ConfigError
from multi_task_orchestrator.engine.runners.base import RunContext, Runner
from multi_task_orchestrator.engine.runners.files.config import FilesConfig, FileSettings, Format
from multi_task_orchestrator.engine.runners.files.disk import (
    listing,
    matches,
    read_text,
    write_text,
)
from multi_task_orchestrator.engine.runners.files.formats import appended, parse, render
from multi_task_orchestrator.engine.runners.files.paths import (
    check_name_lengths,
    file_format,
    inside,
    relative,
    workspace_root,
)


class FileProcessingRunner(Runner[FilesConfig]):
    """Reads, writes, appends, lists and globs inside the workspace; see the package's docstring."""

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
            check_name_lengths(pattern, "pattern")
            try:
                found, outside = await asyncio.to_thread(matches, root, pattern)
            except ValueError as exc:  # pathlib's word on a pattern it cannot take
                raise ConfigError(f"refused pattern '{pattern}': {exc}") from None
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
            return await asyncio.to_thread(listing, root, path, shown)
        fmt = file_format(config, path)
        if config.action == "read":
            text = await asyncio.to_thread(read_text, root, path, config.encoding, shown)
            data = parse(text, fmt, shown)
            ctx.log(f"read {shown} ({fmt})")
            return data
        limit = int(self.settings_as(FileSettings).max_write_bytes)
        if config.action == "write":
            text = render(config.content, fmt, shown)
            size = await asyncio.to_thread(
                write_text, root, path, text, config.encoding, shown, limit
            )
        else:
            lock = self._append_locks.setdefault(path, asyncio.Lock())
            async with lock:
                size = await asyncio.to_thread(self._append, root, path, config, fmt, shown, limit)
        ctx.log(f"{config.action} {shown} ({fmt}, {size} bytes)")
        return {"path": relative(root, path), "format": fmt, "bytes": size}

    @staticmethod
    def _append(
        root: Path, path: Path, config: FilesConfig, fmt: Format, shown: str, limit: int
    ) -> int:
        existing = read_text(root, path, config.encoding, shown, missing="")
        text = appended(existing, config.content, fmt, shown)
        return write_text(root, path, text, config.encoding, shown, limit)
