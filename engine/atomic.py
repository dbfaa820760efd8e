"""Writing a file atomically: a reader, or a crash, sees the old content or the new, never half."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


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
