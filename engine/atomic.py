"""Writing a file atomically: a reader, or a crash, sees the old content or the new, never half."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO


def write_atomic(path: Path, data: bytes | str) -> os.stat_result:
    """Replace ``path`` with ``data`` (text is written as UTF-8, newlines untouched).

    The content goes to a temporary file in the same folder (mode 0600, as ``mkstemp`` makes
    it), which is flushed, fsynced and renamed over ``path``; on any failure the temporary file
    is removed and the error propagates. Returns the written file's ``stat``.
    """
    content = data.encode("utf-8") if isinstance(data, str) else data
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
            written = os.fstat(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return written


def write_all_atomic(files: Mapping[Path, bytes | str]) -> None:
    """``write_atomic`` for several files of one folder at once: every file is written to its
    temporary file first, then all are fsynced, renamed, and the folder fsynced once.

    One journal commit carries them all: fsyncing each file as it is written made each wait
    for a commit of its own (milliseconds each while other processes write to the disk). On
    any failure the temporary files are removed and the error propagates; a file already
    renamed stays (each file is whole, old or new).
    """
    written: list[tuple[BinaryIO, str, Path]] = []
    try:
        for path, data in files.items():
            descriptor, temporary = tempfile.mkstemp(
                dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
            )
            opened: BinaryIO = os.fdopen(descriptor, "wb")
            written.append((opened, temporary, path))
            opened.write(data.encode("utf-8") if isinstance(data, str) else data)
            opened.flush()
        for handle, _, _ in written:
            os.fsync(handle.fileno())
            handle.close()
        for _, temporary, path in written:
            os.replace(temporary, path)
    except BaseException:
        for handle, temporary, _ in written:
            handle.close()
            Path(temporary).unlink(missing_ok=True)
        raise
    for folder in {path.parent for path in files}:
        fsync_folder(folder)


def fsync_folder(folder: Path) -> None:
    """Make the renames in ``folder`` durable. Best effort: some platforms and filesystems
    cannot open or fsync a directory, and the files themselves are already complete on disk."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
