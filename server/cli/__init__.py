"""The ``orchestrator`` command: run, validate, list, status, results, report, resume, schedule,
vault.

Exit codes: 0 when every task succeeded, 1 when any failed, 2 for bad input (an invalid document,
an unknown id, a bad setting), 130 when a run was cancelled with Ctrl-C. Errors are one clear
message on stderr, never a traceback.

This module runs a command: ``parser`` knows every command and option; the commands live by
family in ``runs`` (run, retry, resume), ``history`` (list, status, results, report),
``documents`` (validate, schema), ``serving`` (serve, worker, demo, doctor; ``relay`` for stdio),
``schedules`` (schedule add, list, rm, pause, resume), ``vault``, ``approvals`` (approve, reject,
approvals) and ``ui`` (the live view of a running server), each imported only when one of its
commands runs: a command starts with what it needs, not with what every command needs
(tests/test_startup.py).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import re
import sys
from collections.abc import Callable, Sequence

from multi_task_orchestrator.server.cli.common import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    console,
)
from multi_task_orchestrator.server.cli.parser import build_parser

__all__ = [
    "EXIT_CANCELLED",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PRIVATE_UMASK",
    "UsageError",
    "main",
    "run",
]

PRIVATE_UMASK = 0o077
# The collector's young threshold while the command starts (Python's default: 700): the
# imports make ~110,000 objects that live as long as the process, and with the default the
# collector ran ~250 times over the growing heap while serve started, once over all of it; at
# 50,000 still 3 times (~30 ms). A command that runs on lowers it once it has started
# (``common.started``; the engine does when it opens, engine/gc_policy.py).
START_THRESHOLD = 200_000
_NOT_TEXT = re.compile("[\ud800-\udfff]")


def main(argv: Sequence[str] | None = None) -> int:
    # Everything this process writes under the home folder (state, vault, runs, logs, the
    # workspace) is for this user alone: files 0600, folders 0700.
    os.umask(PRIVATE_UMASK)
    given = list(sys.argv[1:] if argv is None else argv)
    for arg in given:
        if _NOT_TEXT.search(arg):  # bytes that are not UTF-8 (Python keeps them as surrogates)
            shown = arg.encode("utf-8", "backslashreplace").decode()
            sys.stderr.write(f"error: the argument '{shown}' is not UTF-8 text; give it as text\n")
            return EXIT_USAGE
    parser = build_parser()
    args, unknown = parser.parse_known_args(given)
    if unknown:
        own: argparse.ArgumentParser = getattr(args, "usage_parser", parser)
        own.error(f"unrecognized arguments: {' '.join(unknown)}{_did_you_mean(own, unknown)}")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    out = console()
    err = console(stderr=True)
    try:
        return _handler(args.handler)(args, out, err)
    except BrokenPipeError:
        # The reader went away (`orchestrator schema | head`): stop quietly, as rich does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        return EXIT_CANCELLED
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise
        err.print(f"error: {exc}", markup=False)
        return EXIT_USAGE


def _did_you_mean(parser: argparse.ArgumentParser, unknown: list[str]) -> str:
    """A hint for a mistyped option (``--jsno``: did you mean --json?)."""
    import difflib

    options = [option for action in parser._actions for option in action.option_strings]
    for word in unknown:
        close = difflib.get_close_matches(word.partition("=")[0], options, n=1)
        if word.startswith("--") and close:
            return f" (did you mean {close[0]}?)"
    return ""


def run() -> None:
    """The ``orchestrator`` command: ``main`` on this process's arguments, then exit with its
    code. What is left is frozen first (``gc.freeze``): the interpreter's last collection would
    walk every object of the process (~40 ms, a fifth of ``validate``) only to free memory the
    process gives back as it ends."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(START_THRESHOLD, middle, old)
    code = main()
    gc.freeze()
    sys.exit(code)


def _handler(name: str) -> Callable[..., int]:
    """The function a command's ``handler`` names, ``"module:function"`` of this package."""
    module, function = name.split(":")
    found: Callable[..., int] = getattr(importlib.import_module(f"{__name__}.{module}"), function)
    return found


def _user_errors() -> tuple[type[Exception], ...]:
    """What a command raises for bad input: one line on stderr, exit code 2. Imported once
    raised (a command that raised one has imported it already)."""
    from multi_task_orchestrator.engine import DocumentError, RequestError, StoreError
    from multi_task_orchestrator.server.settings import SettingsError
    from multi_task_orchestrator.vault.errors import VaultError

    return (UsageError, SettingsError, StoreError, RequestError, VaultError, DocumentError)
