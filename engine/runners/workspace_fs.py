"""Reading and writing a file inside the workspace without ever following a symbolic link.

Every folder on the way is opened relative to the descriptor of the one before it, with
``O_NOFOLLOW | O_DIRECTORY``; the file itself with ``O_NOFOLLOW``; and the temporary file of a
write is created (``O_EXCL``) and renamed inside the target's own folder through that folder's
descriptor. So a folder swapped for a link to elsewhere while a task works (after the path was
checked) makes the task fail instead of sending the write out of the workspace. The callers
check the path first (``files.inside``) for the clear messages; this is what makes it hold.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import PurePosixPath

from multi_task_orchestrator.engine.errors import ConfigError, TaskError

_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _swapped(shown: str) -> ConfigError:
    return ConfigError(
        f"refused path {shown}: a part of it is a symbolic link (it may have been swapped in "
        "while the task ran); writes and reads never follow links, so they stay inside the "
        "workspace"
    )


@contextmanager
def _folder(root: str, parts: tuple[str, ...], shown: str, *, create: bool) -> Iterator[int]:
    """A descriptor of ``root/parts...``, each part opened without following a link."""
    current = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            if create:
                with suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=current)
            try:
                following = os.open(part, _FOLDER_FLAGS, dir_fd=current)
            except NotADirectoryError:
                if stat.S_ISLNK(os.lstat(part, dir_fd=current).st_mode):
                    raise _swapped(shown) from None
                raise TaskError(f"{shown}: a part of the path is a file, not a folder") from None
            os.close(current)
            current = following
        yield current
    finally:
        os.close(current)


def _split(relative: PurePosixPath, shown: str) -> tuple[tuple[str, ...], str]:
    parts = relative.parts
    if not parts or any(part in ("", ".", "..") for part in parts):
        raise ConfigError(
            f"refused path {shown}: it is the workspace folder itself; give a file name inside "
            "it, e.g. out/result.json"
        )
    return parts[:-1], parts[-1]


def write_file(root: str, relative: PurePosixPath, data: bytes, shown: str) -> None:
    """Replace ``root/relative`` with ``data`` atomically (a temporary file in the same folder,
    then a rename), creating the folders on the way; no link is ever followed."""
    folders, name = _split(relative, shown)
    with _folder(root, folders, shown, create=True) as folder:
        # a prefix of the name only: the whole of a long one would make too long a name
        temporary = f".{name[:64]}.{secrets.token_hex(8)}.tmp"
        descriptor = os.open(temporary, _NEW_FILE_FLAGS, 0o600, dir_fd=folder)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=folder)
            raise


def read_file(root: str, relative: PurePosixPath, shown: str, limit: int) -> bytes | None:
    """The bytes of ``root/relative`` (None when it does not exist); no link is followed.
    ``TaskError`` when it is larger than ``limit``."""
    folders, name = _split(relative, shown)
    try:
        with _folder(root, folders, shown, create=False) as folder:
            try:
                descriptor = os.open(
                    name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder
                )
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise _swapped(shown) from None
                raise
            with os.fdopen(descriptor, "rb") as handle:
                status = os.fstat(handle.fileno())
                if stat.S_ISDIR(status.st_mode):
                    raise IsADirectoryError(errno.EISDIR, "is a folder")
                if status.st_size > limit:
                    raise TaskError(
                        f"{shown} is {status.st_size / 1048576:.0f} MiB, more than the "
                        f"{limit // 1048576} MiB a task reads at once"
                    )
                return handle.read(limit + 1)
    except FileNotFoundError:
        return None
