"""The blocking work of the actions, run in a worker thread: reading and writing a file
through ``workspace_fs`` (opened folder by folder, no link followed), listing a folder and
matching a glob."""

from __future__ import annotations

import codecs
import errno
import io
from pathlib import Path
from typing import Any

from multi_task_orchestrator.engine.errors import ConfigError, TaskError
from multi_task_orchestrator.engine.limits import show_bytes
from multi_task_orchestrator.engine.runners.files.paths import relative, under
from multi_task_orchestrator.engine.runners.workspace_fs import read_file, write_file

MAX_READ_BYTES = 64 * 1024 * 1024


def read_text(
    root: Path, path: Path, encoding: str, shown: str, *, missing: str | None = None
) -> str:
    """The text of ``path`` (read without following links); ``missing`` when it does not exist
    (by default that is an error)."""
    try:
        content = read_file(str(root), under(root, path), shown, MAX_READ_BYTES)
        if content is None:
            if missing is None:
                raise TaskError(f"{shown} does not exist")
            return missing
        # a byte order mark (as Excel writes before a CSV) is not part of the text
        codec = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
        return io.TextIOWrapper(io.BytesIO(content), encoding=codec, newline="").read()
    except IsADirectoryError:
        raise TaskError(f"{shown} is a folder, not a file (use action: list)") from None
    except UnicodeDecodeError:
        raise TaskError(f"{shown} is not {encoding} text (set encoding)") from None
    except LookupError:
        raise ConfigError(f"unknown encoding '{encoding}'") from None
    except OSError as exc:
        raise _os_error(exc, f"{shown} cannot be read") from None


def write_text(root: Path, path: Path, text: str, encoding: str, shown: str, limit: int) -> int:
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
        write_file(str(root), under(root, path), data, shown)
    except IsADirectoryError:
        raise TaskError(f"{shown} is a folder; give a file name") from None
    except NotADirectoryError:
        raise TaskError(f"{shown}: a part of the path is a file, not a folder") from None
    except OSError as exc:
        raise _os_error(exc, f"{shown} cannot be written") from None
    return len(data)


def _os_error(exc: OSError, what: str) -> TaskError:
    """The task's error for what the operating system refused, in its words."""
    if exc.errno == errno.ENAMETOOLONG:
        return ConfigError(f"{what}: a name in it is longer than the file system allows")
    return TaskError(f"{what}: {exc.strerror or exc}")


def listing(root: Path, folder: Path, shown: str) -> list[dict[str, Any]]:
    if not folder.is_dir():
        raise TaskError(
            f"{shown} is not a folder" if folder.exists() else f"{shown} does not exist"
        )
    entries = []
    for entry in sorted(folder.iterdir(), key=lambda path: path.name):
        try:
            if not entry.resolve().is_relative_to(root):
                continue  # a link out of the workspace: not shown
        except RuntimeError:
            continue  # a loop of links: it names nothing
        kind = "directory" if entry.is_dir() else "file" if entry.is_file() else "other"
        entries.append(
            {
                "name": entry.name,
                "path": relative(root, entry),
                "type": kind,
                "size": entry.stat().st_size if kind == "file" else None,
            }
        )
    return entries


def matches(root: Path, pattern: str) -> tuple[list[str], list[str]]:
    """Files matching ``pattern`` (relative paths, sorted), and the links out that were left out.
    A pattern ending in ``**`` matches every file below, not only the folders."""
    if pattern.rstrip("/").rsplit("/", 1)[-1] == "**":
        pattern = pattern.rstrip("/") + "/*"  # every file below, as a shell's globstar
    found, outside = [], []
    for match in root.glob(pattern):
        if not match.is_file():
            continue
        if match.resolve().is_relative_to(root):
            found.append(relative(root, match))
        else:
            outside.append(relative(root, match))
    return sorted(found), sorted(outside)
