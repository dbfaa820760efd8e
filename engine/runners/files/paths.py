"""Paths as a ``file_processing`` task names them, checked against the workspace: one that
could lead out of it is refused with a message saying why."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from multi_task_orchestrator.engine.errors import ConfigError
from multi_task_orchestrator.engine.runners.base import RunContext
from multi_task_orchestrator.engine.runners.files.config import (
    FORMAT_BY_EXTENSION,
    FilesConfig,
    Format,
)

NAME_MAX = 255  # bytes in one file or folder name: ext4, XFS, Btrfs, tmpfs and APFS alike


def _shortened(text: str, keep: int = 60) -> str:
    return text if len(text) <= keep else f"{text[: keep // 2]}...{text[-keep // 2 :]}"


def workspace_root(ctx: RunContext) -> Path:
    """The workspace, resolved and created."""
    if ctx.workspace is None:
        raise ConfigError("no workspace folder is configured (set ORCHESTRATOR_WORKSPACE)")
    root = ctx.workspace.expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise ConfigError(
            f"the workspace {root} is not a folder; set ORCHESTRATOR_WORKSPACE to a folder"
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"the workspace folder {root} cannot be made: {exc.strerror or exc}; set "
            "ORCHESTRATOR_WORKSPACE to a folder the orchestrator may write"
        ) from None
    return root


def check_name_lengths(text: str, what: str = "path") -> None:
    """ConfigError when a part of ``text`` is longer than a file system takes a name."""
    for part in PurePosixPath(text).parts:
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            raise ConfigError(
                f"refused {what} '{_shortened(text)}': the name '{_shortened(part)}' is "
                f"{size} bytes, and a file or folder name may have at most {NAME_MAX}; "
                "give a shorter name"
            )


def inside(root: Path, text: str, what: str = "path") -> Path:
    """The resolved file ``text`` names inside ``root``; ConfigError when it would leave it."""
    if not text.strip() or "\x00" in text:
        raise ConfigError(f"the {what} '{text}' is empty or not a file name")
    given = Path(text)
    check_name_lengths(text, what)
    if ".." in given.parts:
        raise ConfigError(
            f"refused {what} '{text}': '..' is not allowed; paths stay inside the workspace {root}"
        )
    if given.is_absolute() and not Path(os.path.abspath(given)).is_relative_to(root):
        raise ConfigError(
            f"refused {what} '{text}': an absolute path outside the workspace {root}; "
            "give a path relative to the workspace"
        )
    try:
        resolved = (root / given).resolve()
    except RuntimeError:  # Python 3.11's word for a loop of links
        raise ConfigError(
            f"refused {what} '{text}': its symbolic links form a loop, so it names no file"
        ) from None
    if not resolved.is_relative_to(root):
        raise ConfigError(
            f"refused {what} '{text}': a symbolic link leads out of the workspace {root} "
            f"(to {resolved})"
        )
    return resolved


def relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def file_format(config: FilesConfig, path: Path) -> Format:
    return config.format or FORMAT_BY_EXTENSION.get(path.suffix.lower(), "text")


def under(root: Path, path: Path) -> PurePosixPath:
    """``path`` (inside ``root``) relative to it, as ``workspace_fs`` takes it."""
    return PurePosixPath(path.relative_to(root).as_posix()) if path != root else PurePosixPath()
