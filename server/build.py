"""Build the engine from the settings: the one place an entry point gets its ``Engine``.

``build_engine(settings)`` gives every command, the MCP server, the demo and the bench the same
engine for the same settings: the state database and run folders under the home, the engine's
options, the vault's secrets, and the execution backend (local, or a Dask cluster reached with
a bounded wait at start). A scheduler that cannot be reached stops the start with
``BackendUnavailable``, before any run is resumed or started, instead of hanging or running
everything locally.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from multi_task_orchestrator.engine import SecretResolver, TaskError
from multi_task_orchestrator.server.settings import SettingsError, vault_resolver
from multi_task_orchestrator.vault.errors import VaultError
from multi_task_orchestrator.vault.lazy import LazyVaultResolver

if TYPE_CHECKING:  # the engine's run machinery is imported by what opens an engine
    from multi_task_orchestrator.engine import Backend, DocumentChecker, Engine
    from multi_task_orchestrator.server.settings import Settings

logger = logging.getLogger("orchestrator.build")

# "lazy": the vault is opened the first time a secret is needed, so a document that names none
# runs even when the vault cannot be unlocked (the CLI); "warm": the same, but opened at start
# when it can be, so masking never waits for an unlock (the server); "none": no vault (the
# bench, the demo).
VaultUse = Literal["lazy", "warm", "none"]


class BackendUnavailable(SettingsError):
    """The configured execution backend cannot be used (e.g. its scheduler does not answer)."""


@dataclass(frozen=True, slots=True)
class Built:
    """An open engine, and the vault behind its secrets when one was unlocked."""

    engine: Engine
    vault: LazyVaultResolver | None


@asynccontextmanager
async def build_engine(
    settings: Settings,
    *,
    resume: bool = False,
    vault: VaultUse = "lazy",
    secrets: SecretResolver | None = None,
    notify: Callable[[str], None] = logger.warning,
    **overrides: Any,
) -> AsyncIterator[Built]:
    """Open the engine ``settings`` describe and close it (and its vault) at the end.

    ``resume`` takes over unfinished runs at start; ``secrets`` replaces the vault (the demo's
    in-memory credentials); ``overrides`` replace single engine options (the bench's limits);
    ``notify`` hears what the user should know (no Dask worker connected yet).
    """
    from multi_task_orchestrator.engine import Engine

    backend = await connect_backend(settings, notify)
    try:
        async with _secrets(settings, vault if secrets is None else "none") as opened:
            options = settings.engine_options() | overrides
            engine = await Engine.open(
                settings.db_path,
                settings.runs_dir,
                resume=resume,
                secrets=secrets if secrets is not None else opened,
                backend=backend,
                **options,
            )
            backend = None  # the engine closes it from now on
            async with engine:
                yield Built(engine, opened)
    finally:
        if backend is not None:
            await backend.aclose()


@asynccontextmanager
async def open_checker(
    settings: Settings, *, vault: VaultUse = "lazy"
) -> AsyncIterator[DocumentChecker]:
    """What ``build_engine(settings)``'s engine checks documents with (its runners, secrets and
    limits), without the engine: no state database is opened (``orchestrator validate``)."""
    from multi_task_orchestrator.engine import DocumentChecker

    async with _secrets(settings, vault) as opened:
        checker = DocumentChecker.open(
            runner_settings=settings.runner_settings(),
            secrets=opened,
            max_tasks=settings.max_tasks,
            max_document_bytes=settings.max_document_bytes,
        )
        try:
            yield checker
        finally:
            await checker.aclose()


async def connect_backend(
    settings: Settings, notify: Callable[[str], None] = logger.warning
) -> Backend | None:
    """The settings' execution backend, connected; None for the local one.

    Connecting happens here, with the settings' bounded wait, so an unreachable scheduler is
    an error at start (``BackendUnavailable``) and not a run whose every task fails later.
    """
    backend = settings.execution_backend()
    if backend is None:
        return None
    try:
        client = await backend.connect()
    except TaskError as exc:
        await backend.aclose()
        raise BackendUnavailable(exc.message) from None
    info = client.scheduler_info()
    # Dask lists no workers in this summary since 2025; ``n_workers`` counts them all
    if not info.get("n_workers", len(info.get("workers", {}))):
        notify(
            f"no Dask worker is connected to {settings.dask_scheduler} yet: tasks wait until one "
            f"joins (start one with 'orchestrator worker --scheduler {settings.dask_scheduler}')"
        )
    return backend


async def check_backend(settings: Settings) -> None:
    """Connect to the settings' backend and disconnect: ``BackendUnavailable`` if it cannot be
    reached. For ``serve``, which must report it before its transport starts."""
    backend = await connect_backend(settings, notify=lambda _: None)
    if backend is not None:
        await backend.aclose()


# --- the vault: the one place an engine gets it ---------------------------------------------


@asynccontextmanager
async def _secrets(settings: Settings, use: VaultUse) -> AsyncIterator[LazyVaultResolver | None]:
    """The vault's resolver for ``use`` (or None); its last-used times are saved at the end."""
    if use == "none":
        yield None
        return
    resolver = vault_resolver(settings)
    if use == "warm":
        problem = await asyncio.to_thread(resolver.warm)
        if problem is not None:
            logger.warning("the vault cannot be opened; secrets cannot be used: %s", problem)
    try:
        yield resolver
    finally:
        try:
            await asyncio.to_thread(resolver.close)
        except VaultError as exc:
            logger.warning("could not save the secrets' last-used times: %s", exc)
