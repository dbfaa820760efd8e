"""Writing a file atomically: a reader, or a crash, sees the old content or the new, never half."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
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


class AtomicFiles:
    """Files written together, each atomically: ``write`` puts a file's content in a temporary
    file beside it (mode 0600) as it is given, piece by piece; leaving the ``with`` block
    fsyncs them all, renames each over its target and fsyncs their folders once. On an error
    inside the block the temporary files are removed and nothing is renamed.

    One journal commit carries them all: fsyncing each file as it was written made each wait
    for a commit of its own (milliseconds each while other processes write to the disk). And
    a large file never needs to be held whole: a 100,000-task run's results and report are
    tens of megabytes each.
    """

    def __init__(self) -> None:
        self._written: list[tuple[BinaryIO, str, Path]] = []

    def write(self, path: Path, content: bytes | str | Iterable[bytes | str]) -> None:
        descriptor, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
        handle: BinaryIO = os.fdopen(descriptor, "wb")
        self._written.append((handle, temporary, path))
        pieces = (content,) if isinstance(content, bytes | str) else content
        for piece in pieces:
            handle.write(piece.encode("utf-8") if isinstance(piece, str) else piece)
        handle.flush()

    def __enter__(self) -> AtomicFiles:
        return self

    def __exit__(self, kind: type[BaseException] | None, *details: object) -> None:
        try:
            if kind is None:
                for handle, _, _ in self._written:
                    os.fsync(handle.fileno())
                    handle.close()
                for _, temporary, path in self._written:
                    os.replace(temporary, path)
        finally:
            for handle, temporary, _ in self._written:
                handle.close()
                Path(temporary).unlink(missing_ok=True)  # gone once renamed
        if kind is None:
            for folder in {path.parent for _, _, path in self._written}:
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
