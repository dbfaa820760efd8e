"""The connection every write goes through: a plain sqlite3 connection used from one thread of
its own, so that a whole transaction is one trip to that thread (through aiosqlite every
statement would be a trip of its own) — or, for a small batch, no trip at all."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from multi_task_orchestrator.engine.store.errors import BUSY_TIMEOUT_MS


class WriteConnection:
    """The connection every write goes through, used from one thread of its own."""

    def __init__(self, connection: sqlite3.Connection, thread: ThreadPoolExecutor) -> None:
        self._connection = connection
        self._thread = thread

    @classmethod
    async def open(cls, path: Path) -> WriteConnection:
        thread = ThreadPoolExecutor(1, thread_name_prefix="orchestrator-store")

        def connect() -> sqlite3.Connection:
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA synchronous = NORMAL")
            return connection

        try:
            connection = await asyncio.get_running_loop().run_in_executor(thread, connect)
        except BaseException:
            thread.shutdown(wait=False)
            raise
        return cls(connection, thread)

    async def run(self, work: Callable[..., Any], *args: Any) -> Any:
        """``work(connection, *args)`` on the writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, work, self._connection, *args)

    def run_here(self, work: Callable[..., Any], *args: Any) -> Any:
        """``work(connection, *args)`` on the calling thread, while the writer thread is idle,
        failing at once (SQLITE_BUSY) rather than waiting when another process holds the
        lock."""
        self._connection.execute("PRAGMA busy_timeout = 0")
        try:
            return work(self._connection, *args)
        finally:
            self._connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    async def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            await self.run(sqlite3.Connection.close)
        self._thread.shutdown(wait=False)
