"""What every ``orchestrator`` command shares: exit codes, UsageError, the consoles, the
``--backend``/``--var`` values and the engine a command opens for its work. Light to import
(``main`` imports it before any command): what a command needs is imported as it is used."""

from __future__ import annotations

import argparse
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from multi_task_orchestrator.engine import Engine
    from multi_task_orchestrator.server.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input from the user: printed as one message, exit code 2."""


def started() -> None:
    """The command has imported and built what it runs with: keep all of it out of later
    collections, young objects collected every so often from now on (the engine's
    ``freeze_start_up``). What the start left in cycles is frozen too (in ``serve`` ~6,000
    objects, ~1.5 MB): collecting it first would walk everything the start made (~30 ms)."""
    from multi_task_orchestrator.engine import freeze_start_up

    freeze_start_up()


# What a terminal would obey rather than show: C0 controls but tab and newline, DEL, C1.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """``text`` with each control character written as its escape (ESC as ``\\x1b``): task
    errors and outputs come from web pages and programs, and an escape sequence in one
    could retitle, recolour or clear the terminal that shows it."""
    return _CONTROLS.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def console(*, stderr: bool = False) -> Console:
    """A console for plain text: no wrapping of long lines, no highlighting, control
    characters in what is printed shown as escapes (``terminal_safe``)."""
    from rich.console import Console
    from rich.text import Text

    class PlainConsole(Console):
        def render_str(self, text: str, **options: Any) -> Text:
            return super().render_str(terminal_safe(text), **options)

    return PlainConsole(stderr=stderr, soft_wrap=True, highlight=False)


def with_backend(settings: Settings, args: argparse.Namespace) -> Settings:
    """The settings with --backend and --scheduler applied."""
    update: dict[str, Any] = {}
    if args.backend is not None:
        update["backend"] = args.backend
    if args.scheduler is not None:
        update["dask_scheduler"] = args.scheduler
        update.setdefault("backend", "dask")
    return settings.model_copy(update=update) if update else settings


def json_text(value: Any) -> str:
    """JSON any reader takes, as ``aggregated_results.json`` and the MCP answers are: NaN
    and infinities (a task's output may hold them) as null, where the standard library
    would write ``NaN``, which is not JSON. Other values it cannot write are their text."""
    import orjson

    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:  # an integer past 64 bits
        import json

        return json.dumps(value, default=str)


def parse_vars(pairs: list[str]) -> dict[str, Any]:
    import yaml

    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--var takes NAME=VALUE, got '{pair}'")
        try:
            values[name.strip()] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            values[name.strip()] = text
    return values


@asynccontextmanager
async def open_engine(
    settings: Settings, *, runs_tasks: bool = False, with_vault: bool = False
) -> AsyncIterator[Engine]:
    """An engine for one command; ``with_vault`` gives it the vault, opened when a secret is
    first needed (a document that names none runs even if the vault cannot be unlocked). Only
    a command that ``runs_tasks`` uses the configured backend (and so needs its scheduler)."""
    from multi_task_orchestrator.server.build import build_engine

    if not runs_tasks:
        settings = settings.model_copy(update={"backend": "local"})
    err = console(stderr=True)
    async with build_engine(
        settings,
        vault="lazy" if with_vault else "none",
        notify=lambda text: err.print(text, markup=False),
    ) as built:
        yield built.engine
