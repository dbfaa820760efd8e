"""Settings, read from ``ORCHESTRATOR_*`` environment variables in this one place.

The engine and the vault take plain arguments; only the CLI and the server read the
environment, so both stay usable as libraries and in tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import platformdirs
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.network import DEFAULT_PER_HOST, HostLimits, Network, NetworkPolicy
from engine.runners.browser.pool import BrowserSettings
from engine.spec import RateValue
from vault.store import Vault


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
    vault_key: SecretStr | None = Field(
        None,
        description="ORCHESTRATOR_VAULT_KEY: a Fernet key that unlocks the vault (first choice)",
    )
    vault_passphrase: SecretStr | None = Field(
        None,
        description="ORCHESTRATOR_VAULT_PASSPHRASE: a passphrase that unlocks the vault through "
        "scrypt (when no key is set); without either, the key file vault.key beside the vault",
    )

    @property
    def vault_path(self) -> Path:
        return self.home / "vault.db"

    @property
    def log_path(self) -> Path:
        return self.home / "server.log"

    @property
    def db_path(self) -> Path:
        return self.home / "state.db"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    # --- outbound network and files (http, multi_publish, file_processing) ----------------

    workspace: Path | None = Field(
        None,
        description="ORCHESTRATOR_WORKSPACE: the folder file_processing tasks read and write "
        "(default: the workspace folder in ORCHESTRATOR_HOME)",
    )
    per_host_limit: int = Field(
        DEFAULT_PER_HOST,
        ge=1,
        le=1000,
        description="ORCHESTRATOR_PER_HOST_LIMIT: requests at once to one host, server-wide",
    )
    host_rates: dict[str, RateValue] = Field(
        default_factory=dict,
        description='ORCHESTRATOR_HOST_RATES: per-host rates as JSON, e.g. {"api.example.org": '
        '"10/s"}',
    )
    net_allow: list[str] = Field(
        default_factory=list,
        description="ORCHESTRATOR_NET_ALLOW: if set, the only hosts, *.domain patterns or "
        "networks requests may reach (JSON list)",
    )
    net_deny: list[str] = Field(
        default_factory=list,
        description="ORCHESTRATOR_NET_DENY: hosts, *.domain patterns or networks requests may "
        "not reach (JSON list)",
    )
    net_block_private: bool = Field(
        False,
        description="ORCHESTRATOR_NET_BLOCK_PRIVATE: refuse private and loopback addresses",
    )
    net_allow_link_local: bool = Field(
        False,
        description="ORCHESTRATOR_NET_ALLOW_LINK_LOCAL: allow link-local and cloud metadata "
        "addresses (169.254.0.0/16, fe80::/10), refused by default",
    )

    @property
    def workspace_dir(self) -> Path:
        return self.workspace or self.home / "workspace"

    def network(self) -> Network:
        """The engine's network policy and per-host limits (build it inside the event loop)."""
        policy = NetworkPolicy(
            allow=list(self.net_allow),
            deny=list(self.net_deny),
            block_private=self.net_block_private,
            allow_link_local=self.net_allow_link_local,
        )
        return Network(policy, HostLimits(self.per_host_limit, dict(self.host_rates)))

    # --- the browser (browser_automation) ---------------------------------------------------

    browser_path: Path | None = Field(
        None,
        description="ORCHESTRATOR_BROWSER_PATH: the Chromium executable to drive (default: "
        "Playwright's Chromium, else /usr/lib/chromium/chromium, else chromium on PATH)",
    )
    browser_limit: int = Field(
        4,
        ge=1,
        le=256,
        description="ORCHESTRATOR_BROWSER_LIMIT: browser pages working at once, server-wide",
    )

    def browser(self) -> BrowserSettings:
        return BrowserSettings(path=self.browser_path, limit=self.browser_limit)

    def engine_options(self) -> dict[str, Any]:
        """Everything ``Engine.open`` takes from the settings besides its files and secrets
        (build it inside the event loop: the network holds asyncio objects)."""
        return {
            "max_concurrent": self.max_concurrent,
            "max_tasks": self.max_tasks,
            "network": self.network(),
            "workspace": self.workspace_dir,
            "resources": {"browser": self.browser()},
        }


def open_vault(settings: Settings) -> Vault:
    """Unlock (or create) the vault with the configured key source; VaultError if it cannot."""
    key, passphrase = settings.vault_key, settings.vault_passphrase
    return Vault.open(
        settings.vault_path,
        key=key.get_secret_value() if key is not None else None,
        passphrase=passphrase.get_secret_value() if passphrase is not None else None,
    )


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
