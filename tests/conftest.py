"""Shared fixtures: an engine on a real SQLite file in a temporary folder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.engine import Engine


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
