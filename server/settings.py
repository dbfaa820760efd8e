"""Settings, read from ``ORCHESTRATOR_*`` environment variables in this one place.

The engine and the vault take plain arguments; only the CLI and the server read the
environment, so both stay usable as libraries and in tests.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("multi-task-orchestrator", appauthor=False))


class Settings(BaseSettings):
    """Every setting, with its environment variable name in the description."""

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", extra="ignore")

    home: Path = Field(
        default_factory=_default_home,
        description="ORCHESTRATOR_HOME: the data folder (state database, run folders)",
    )
    max_concurrent: int = Field(
        64,
        ge=1,
        le=10_000,
        description="ORCHESTRATOR_MAX_CONCURRENT: tasks running at once, server-wide",
    )
    max_tasks: int = Field(
        10_000,
        ge=1,
        description="ORCHESTRATOR_MAX_TASKS: tasks per orchestration, after fan-out expansion",
    )

    max_wait_seconds: float = Field(
        50.0,
        gt=0,
        le=600,
        description="ORCHESTRATOR_MAX_WAIT_SECONDS: the longest a tool call waits (below the "
        "client's request timeout, 60 s in common clients)",
    )
    http_token: SecretStr | None = Field(
        None,
        description="ORCHESTRATOR_HTTP_TOKEN: bearer token for the HTTP transport; required "
        "when it listens on anything but loopback",
    )
    http_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="ORCHESTRATOR_HTTP_ALLOWED_HOSTS: extra host names clients use to reach the "
        "HTTP transport (JSON list), for the DNS rebinding check",
    )

    @property
    def log_path(self) -> Path:
        return self.home / "server.log"

    @property
    def db_path(self) -> Path:
        return self.home / "state.db"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"


class SettingsError(Exception):
    """An environment variable holds a value that cannot be used."""


def load_settings() -> Settings:
    """Read the settings; a bad value raises SettingsError naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"ORCHESTRATOR_{str(err['loc'][0]).upper()}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise SettingsError(f"invalid setting: {problems}") from None
