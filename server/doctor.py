"""``orchestrator doctor``: what this installation has, what it is missing, and how to fix it."""

from __future__ import annotations

import platform
import sqlite3
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Literal

from multi_task_orchestrator.engine import (
    SCHEMA_VERSION,
    BrowserNotFound,
    BrowserSettings,
    locate_browser,
)
from multi_task_orchestrator.server.settings import open_vault
from multi_task_orchestrator.vault.errors import VaultError

if TYPE_CHECKING:  # the model with the runners' fields is built when first used
    from multi_task_orchestrator.server.settings import Settings

Verdict = Literal["ok", "warning", "error"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    verdict: Verdict
    detail: str


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def check_database(settings: Settings) -> Check:
    path = settings.db_path
    if not path.exists():
        return Check("database", "ok", f"{path} (created on first run)")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            (schema,) = db.execute("SELECT version FROM schema_version").fetchone()
            counts = dict(db.execute("SELECT status, count(*) FROM orchestrations GROUP BY status"))
    except sqlite3.Error as exc:
        return Check(
            "database",
            "error",
            f"{path} cannot be read ({exc}); move it aside to start afresh, or restore a backup",
        )
    if schema > SCHEMA_VERSION:
        return Check("database", "error", f"{path} has schema {schema}; upgrade this program")
    listed = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "empty"
    return Check("database", "ok", f"{path} (schema {schema}; {listed})")


def check_vault(settings: Settings) -> Check:
    path = settings.vault_path
    if not path.exists():
        return Check(
            "vault", "ok", f"{path} not created yet (made by the first 'orchestrator vault set')"
        )
    try:
        vault = open_vault(settings)
    except VaultError as exc:
        return Check("vault", "error", str(exc))
    try:
        count = len(vault.names())
        return Check("vault", "ok", f"{path}: {count} secret(s), unlocked with {vault.key_source}")
    finally:
        vault.close()


async def check_browser(settings: Settings) -> Check:
    try:
        found = await locate_browser(settings.runner_setting(BrowserSettings).path)
    except BrowserNotFound as exc:
        return Check("browser", "warning", f"{exc} (browser_automation tasks cannot run)")
    return Check("browser", "ok", found.describe())


async def diagnose(settings: Settings) -> list[Check]:
    """Every check, in the order they are shown."""
    versions = ", ".join(
        f"{name} {_version(name)}" for name in ("multi-task-orchestrator", "mcp", "playwright")
    )
    browser_pages = settings.runner_setting(BrowserSettings).limit
    return [
        Check("python", "ok", f"{platform.python_version()} ({versions})"),
        Check("home", "ok", f"{settings.home} (ORCHESTRATOR_HOME)"),
        check_database(settings),
        check_vault(settings),
        await check_browser(settings),
        Check(
            "limits",
            "ok",
            f"{settings.max_concurrent} tasks at once server-wide, {settings.per_host_limit} "
            f"per host, {browser_pages} browser pages, {settings.max_tasks} tasks per "
            "orchestration",
        ),
    ]
