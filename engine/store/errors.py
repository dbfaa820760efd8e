"""What the store raises, and SQLite's lock held by another process: how to tell it, how long
to wait for it."""

from __future__ import annotations

import sqlite3

BUSY_RETRIES = 6
BUSY_TIMEOUT_MS = 10_000  # how long a statement waits for another process's lock


class StoreError(Exception):
    """The state database cannot be used; the message names the file and what to do."""


def busy(error: sqlite3.OperationalError) -> bool:
    """Whether ``error`` says another connection holds the lock (SQLITE_BUSY, SQLITE_LOCKED)."""
    text = str(error).lower()
    return "locked" in text or "busy" in text
