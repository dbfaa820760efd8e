"""Shared fixtures: an engine on a real SQLite file, and a runner context, in temporary folders."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from webhook_receiver import Receiver, serving

from multi_task_orchestrator.engine.engine import Engine
from multi_task_orchestrator.engine.runners.base import RunContext
from multi_task_orchestrator.engine.secrets import NoVault

LogLine = tuple[str, str, dict[str, Any] | None]


@pytest.fixture(autouse=True)
def no_orchestrator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from each test alone, never from the environment running the tests."""
    for name in list(os.environ):
        if name.startswith("ORCHESTRATOR_"):
            monkeypatch.delenv(name)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
async def engine(home: Path) -> AsyncIterator[Engine]:
    async with await Engine.open(home / "state.db", home / "runs", resume=False) as opened:
        yield opened


@pytest.fixture
def log_lines() -> list[LogLine]:
    return []


@pytest.fixture
def ctx(tmp_path: Path, log_lines: list[LogLine]) -> RunContext:
    """A runner's context for calling a runner directly; log lines are collected."""
    return RunContext(
        orchestration_id="orch-1",
        task_id="task",
        attempt=1,
        run_dir=tmp_path,
        secrets=NoVault(),
        log_sink=lambda level, message, data: log_lines.append((level, message, data)),
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local webhook receiver (``webhook_receiver``) for notifications."""
    with serving() as listening:
        yield listening
