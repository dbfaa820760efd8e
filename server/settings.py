"""Settings, read from ``ORCHESTRATOR_*`` environment variables in this one place.

The engine and the vault take plain arguments; only the CLI and the server read the
environment, so both stay usable as libraries and in tests. ``CoreSettings`` holds the
orchestrator's own settings; ``Settings`` adds every registered runner's settings
(``server.runner_settings``), so a task type brings its settings without an edit here.

``Settings`` is built when first asked for, as it imports every runner to find their settings.
``load_settings`` builds it only when the environment sets a variable that is not one of
``CoreSettings``' (a runner's, or a misspelling): otherwise every runner setting is at its
default, and a ``CoreSettings`` serves — a command then imports only the runners it uses.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import platformdirs
from pydantic import BaseModel, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

from multi_task_orchestrator.engine import (
    DEFAULT_PER_HOST,
    HostLimits,
    Network,
    NetworkPolicy,
    PolicyEntry,
    RateValue,
    channel_url_problem,
    did_you_mean,
)
from multi_task_orchestrator.server.runner_settings import (
    PREFIX,
    explicit_runner_settings,
    runner_settings,
    settings_of,
    with_runner_fields,
)

if TYPE_CHECKING:  # the vault loads when it is opened (its cryptography takes a while)
    from multi_task_orchestrator.vault.lazy import LazyVaultResolver
    from multi_task_orchestrator.vault.store import Vault


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("multi-task-orchestrator", appauthor=False))


ModelT = TypeVar("ModelT", bound=BaseModel)


class CoreSettings(BaseSettings):
    """The orchestrator's own settings, each with its environment variable name in its
    description (``Settings`` adds the runners')."""

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", extra="ignore")

    home: Path = Field(
        default_factory=_default_home,
        description="ORCHESTRATOR_HOME: the data folder: `state.db`, `runs/`, `vault.db`, "
        "`vault.key`, `server.log`",
        json_schema_extra={
            "shown_default": "the per-user data folder: `~/.local/share/multi-task-orchestrator` "
            "on Linux, `~/Library/Application Support/multi-task-orchestrator` on macOS, "
            "`%LOCALAPPDATA%\\multi-task-orchestrator` on Windows"
        },
    )
    max_concurrent: int = Field(
        64,
        ge=1,
        le=10_000,
        description="ORCHESTRATOR_MAX_CONCURRENT: tasks running at once across every "
        "orchestration of a process",
    )
    max_tasks: int = Field(
        10_000,
        ge=1,
        description="ORCHESTRATOR_MAX_TASKS: tasks per orchestration, fan-out children included",
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
        description="ORCHESTRATOR_HTTP_TOKEN: bearer token for `serve --http`; required "
        "when it listens on anything but loopback",
    )

    @field_validator("http_token")
    @classmethod
    def _token_fits_a_header(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and not all("!" <= c <= "~" for c in token.get_secret_value()):
            raise ValueError(
                "the token travels in an 'Authorization: Bearer' header, so it must be "
                "printable ASCII without spaces; choose another, e.g. the output of "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return token

    http_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="ORCHESTRATOR_HTTP_ALLOWED_HOSTS: extra host names clients use to reach "
        '`serve --http` (JSON list, e.g. `["orchestrator.lan"]`), for its DNS-rebinding check',
    )
    vault_key: SecretStr | None = Field(
        None,
        description="ORCHESTRATOR_VAULT_KEY: a Fernet key that unlocks the vault (first choice)",
    )
    vault_passphrase: SecretStr | None = Field(
        None,
        description="ORCHESTRATOR_VAULT_PASSPHRASE: a passphrase that unlocks the vault through "
        "scrypt (when no key is set); without either, the key file `vault.key` beside the vault",
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
        description="ORCHESTRATOR_WORKSPACE: the folder `file_processing` tasks read and write "
        "and `shell` commands run in (created when needed)",
        json_schema_extra={"shown_default": "`$ORCHESTRATOR_HOME/workspace`"},
    )

    @field_validator("workspace")
    @classmethod
    def _workspace_outside_home(cls, workspace: Path | None, info: ValidationInfo) -> Path | None:
        home = info.data.get("home")
        if workspace is None or home is None:
            return workspace
        inner, outer = home.expanduser().resolve(), workspace.expanduser().resolve()
        if inner.is_relative_to(outer):  # a file task could read vault.key and vault.db
            raise ValueError(
                f"the workspace {outer} holds the data folder {inner} (the vault and its key, "
                "which a document's file tasks could then read): choose a workspace that does "
                "not contain ORCHESTRATOR_HOME, or move ORCHESTRATOR_HOME out of it"
            )
        return workspace

    per_host_limit: int = Field(
        DEFAULT_PER_HOST,
        ge=1,
        le=1000,
        description="ORCHESTRATOR_PER_HOST_LIMIT: requests at once to one host, across every "
        "orchestration",
    )
    host_rates: dict[str, RateValue] = Field(
        default_factory=dict,
        description='ORCHESTRATOR_HOST_RATES: per-host rates (JSON), e.g. `{"api.example.org": '
        '"10/s"}`',
    )
    net_allow: list[PolicyEntry] = Field(
        default_factory=list,
        description="ORCHESTRATOR_NET_ALLOW: if not empty, the only hosts, `*.domain` patterns or "
        "networks (`10.1.0.0/16`) requests may reach (JSON list)",
    )
    net_deny: list[PolicyEntry] = Field(
        default_factory=list,
        description="ORCHESTRATOR_NET_DENY: hosts, `*.domain` patterns or networks requests may "
        "not reach (JSON list)",
    )
    net_block_private: bool = Field(
        False,
        description="ORCHESTRATOR_NET_BLOCK_PRIVATE: also refuse private and loopback addresses",
    )
    net_allow_link_local: bool = Field(
        False,
        description="ORCHESTRATOR_NET_ALLOW_LINK_LOCAL: allow link-local and cloud metadata "
        "addresses (`169.254.0.0/16`, `fe80::/10`, `fd00:ec2::254`), refused by default",
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

    # --- durability ------------------------------------------------------------------------

    lease_seconds: float = Field(
        15.0,
        ge=1,
        le=3600,
        description="ORCHESTRATOR_LEASE_SECONDS: a running orchestration whose process stops "
        "renewing its lease (renewed every third of this) is taken over by another process "
        "after this long",
    )
    shutdown_grace: float = Field(
        10.0,
        ge=0,
        le=3600,
        description="ORCHESTRATOR_SHUTDOWN_GRACE: on SIGTERM or SIGINT, the seconds running tasks "
        "of `serve` may take to finish before they are interrupted (they run again on the next "
        "start)",
    )

    output_file_bytes: int = Field(
        256 * 1024,
        ge=1024,
        description="ORCHESTRATOR_OUTPUT_FILE_BYTES: task outputs larger than this (in bytes) "
        "are kept as files in the run folder, not in the database or in memory",
        json_schema_extra={"shown_default": "262144 (256 KB)"},
    )

    # --- where attempts run (engine/backends) ---------------------------------------------------

    backend: Literal["local", "dask"] = Field(
        "local",
        description="ORCHESTRATOR_BACKEND: where task attempts run: `local` (this process) or "
        "`dask` (the workers of a Dask cluster; needs the `dask` extra and "
        "`ORCHESTRATOR_DASK_SCHEDULER`; see [Scaling out](#scaling-out))",
    )
    dask_scheduler: str | None = Field(
        None,
        description="ORCHESTRATOR_DASK_SCHEDULER: the Dask scheduler's address for "
        "`ORCHESTRATOR_BACKEND=dask`, e.g. `tcp://10.0.0.5:8786`",
    )
    dask_connect_timeout: float = Field(
        5.0,
        gt=0,
        le=600,
        description="ORCHESTRATOR_DASK_CONNECT_TIMEOUT: seconds to wait for the Dask scheduler "
        "at start before giving up with an error",
    )

    def execution_backend(self) -> Any:
        """The engine's backend: None for the local one, else a ``DaskBackend``."""
        if self.backend == "local":
            return None
        if not self.dask_scheduler:
            raise SettingsError(
                "ORCHESTRATOR_BACKEND=dask needs the scheduler's address: set "
                "ORCHESTRATOR_DASK_SCHEDULER=tcp://HOST:8786 (or pass --scheduler)"
            )
        try:
            from multi_task_orchestrator.engine import DaskBackend
        except ImportError as exc:
            raise SettingsError(
                f"ORCHESTRATOR_BACKEND=dask needs Dask distributed ({exc}); install it with "
                "pip install 'multi-task-orchestrator[dask]'"
            ) from None
        return DaskBackend(self.dask_scheduler, connect_timeout=self.dask_connect_timeout)

    def engine_options(self) -> dict[str, Any]:
        """Everything ``Engine.open`` takes from the settings besides its files, secrets and
        backend, which ``server.build.build_engine`` adds (build it inside the event loop: the
        network holds asyncio objects)."""
        return {
            "max_concurrent": self.max_concurrent,
            "max_tasks": self.max_tasks,
            "network": self.network(),
            "workspace": self.workspace_dir,
            "runner_settings": self.runner_settings(),
            "lease_seconds": self.lease_seconds,
            "shutdown_grace": self.shutdown_grace,
            "output_threshold": self.output_file_bytes,
            "max_document_bytes": self.max_document_bytes,
            "notify_url": self.notify_url,
        }

    # --- the runners' settings (their fields are added by ``Settings``) ----------------------

    def runner_settings(self) -> dict[str, BaseModel]:
        """Each runner's settings object, by task type, as the engine hands it to the runner;
        none from a ``CoreSettings`` (every runner then makes its defaults)."""
        if type(self) is CoreSettings:
            return {}
        return runner_settings(self, CoreSettings.model_fields)

    def runner_setting(self, model: type[ModelT]) -> ModelT:
        """The runner settings of one model: ``settings.runner_setting(BrowserSettings)``."""
        return settings_of(self.runner_settings(), model)

    def explicit_runner_settings(self) -> dict[str, dict[str, Any]]:
        """The runner settings set explicitly (the environment's), by task type and field: a
        Dask worker's own, which win over the server's there."""
        if type(self) is CoreSettings:
            return {}
        return explicit_runner_settings(self, CoreSettings.model_fields)

    # --- hostile input -----------------------------------------------------------------------

    max_document_bytes: int = Field(
        5 * 1024 * 1024,
        ge=1024,
        description="ORCHESTRATOR_MAX_DOCUMENT_BYTES: the largest document accepted, in bytes; "
        "a larger one is refused before it is parsed (over HTTP, the MCP endpoint reads "
        "requests up to twice this, for the JSON around the document; a larger request gets "
        "a 413 with a JSON-RPC error naming this setting)",
        json_schema_extra={"shown_default": "5242880 (5 MB)"},
    )

    # --- notifications -------------------------------------------------------------------------

    notify_url: str | None = Field(
        None,
        description="ORCHESTRATOR_NOTIFY_URL: the channel a document's `notify: true` sends to "
        "(`webhook+https://...` or an Apprise URL); unset, `notify: true` writes a log event",
    )

    @field_validator("notify_url")
    @classmethod
    def _a_channel_url(cls, url: str | None) -> str | None:
        problem = channel_url_problem(url) if url is not None else None
        if problem:  # else every run with notify: true would fail to end
            raise ValueError(problem)
        return url


@functools.cache
def settings_model() -> type[CoreSettings]:
    """``Settings``: ``CoreSettings`` with a field per runner setting (every runner imported)."""
    return with_runner_fields(CoreSettings)


if TYPE_CHECKING:  # the runners' fields exist only once the registry is read
    Settings = CoreSettings
else:

    def __getattr__(name: str) -> Any:
        if name == "Settings":
            return settings_model()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sets_other_variables(environ: Iterable[str]) -> bool:
    """Whether ``environ`` (names) has an ``ORCHESTRATOR_*`` variable besides ``CoreSettings``'
    own: a runner's setting, or one no setting has (both need the full model to be judged)."""
    core = {f"{PREFIX}{name}".upper() for name in CoreSettings.model_fields}
    return any(name.upper().startswith(PREFIX) and name.upper() not in core for name in environ)


def open_vault(settings: Settings) -> Vault:
    """Unlock (or create) the vault with the configured key source; VaultError if it cannot."""
    from multi_task_orchestrator.vault.store import Vault

    key, passphrase = settings.vault_key, settings.vault_passphrase
    return Vault.open(
        settings.vault_path,
        key=key.get_secret_value() if key is not None else None,
        passphrase=passphrase.get_secret_value() if passphrase is not None else None,
    )


def vault_resolver(settings: Settings) -> LazyVaultResolver:
    """The engine's secrets: the vault, opened the first time a secret is needed."""
    from multi_task_orchestrator.vault.lazy import LazyVaultResolver

    return LazyVaultResolver(settings.vault_path, lambda: open_vault(settings))


class SettingsError(Exception):
    """An environment variable holds a value that cannot be used."""


def load_settings() -> Settings:
    """Read the settings; a bad value raises SettingsError naming the variable. The runners'
    settings are read (and every runner imported for them) only when the environment names
    a variable besides ``CoreSettings``' own."""
    model = settings_model() if sets_other_variables(os.environ) else CoreSettings
    known = {f"{PREFIX}{name}".upper() for name in model.model_fields}
    for name in sorted(os.environ):
        if name.upper().startswith(PREFIX) and name.upper() not in known:
            hint = did_you_mean(name.upper(), known)
            raise SettingsError(
                f"invalid setting: {name} is not a setting of the orchestrator"
                f"{'; ' + hint if hint else ''} (the settings: python -m "
                "multi_task_orchestrator.server.settings_doc); unset it"
            )
    try:
        return model()
    except ValidationError as exc:
        problems = "; ".join(
            f"ORCHESTRATOR_{str(err['loc'][0]).upper()}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors(include_url=False)
        )
        raise SettingsError(f"invalid setting: {problems}") from None
    except PydanticSettingsError as exc:  # a value that should be JSON and is not
        found = re.search(r'field "(\w+)"', str(exc))
        field = model.model_fields.get(found.group(1)) if found else None
        described = field.description if field is not None and field.description else ""
        name = described.partition(": ")[0] or "a setting"
        raise SettingsError(
            f"invalid setting: {name} is not JSON ({exc.__cause__ or exc}); {described}"
        ) from None
