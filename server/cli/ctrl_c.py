"""What Ctrl-C does in a command that runs an orchestration in the foreground (run, retry,
resume): cancel the runs it follows, so they end ``cancelled`` and their summary prints, and
never leave one ``running`` — not even when Ctrl-C came while a run was being saved."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, Protocol

REASON = "cancelled with Ctrl-C"


class Cancellable(Protocol):
    """What Ctrl-C needs of a run this process runs (the engine's ``Run``)."""

    @property
    def finished(self) -> asyncio.Event: ...

    def cancel(self, reason: str = ...) -> None: ...


class CtrlC:
    """Before the runs are started, Ctrl-C stops the command (nothing was saved); while they
    are being started (saved, taken up again), it is remembered; once they run, it cancels
    those not finished yet."""

    def __init__(self) -> None:
        self._main = asyncio.current_task()
        self._starting = False
        self._runs: list[Cancellable] = []
        self.pressed = False  # while runs were being started or ran

    def __call__(self) -> None:
        if self._starting:
            self.pressed = True
        elif self._runs:
            for run in self._runs:
                if not run.finished.is_set():
                    self.pressed = True
                    run.cancel(REASON)
        elif self._main is not None:
            self._main.cancel()

    @contextmanager
    def starting(self) -> Iterator[None]:
        """Runs are being started: a Ctrl-C now waits until they are, then cancels them."""
        self._starting = True
        try:
            yield
        finally:
            self._starting = False

    def started(self, runs: Iterable[Cancellable | None]) -> None:
        """The runs this command follows (``None``: one that ended already)."""
        self._runs = [run for run in runs if run is not None]
        if self.pressed:
            for run in self._runs:
                run.cancel(REASON)


@contextmanager
def cancels_runs() -> Iterator[CtrlC]:
    """Ctrl-C handled by a ``CtrlC`` until the block ends; call from the command's task."""
    loop = asyncio.get_running_loop()
    ctrl_c = CtrlC()
    with suppress(NotImplementedError):  # no signal handlers on this platform's loop
        loop.add_signal_handler(signal.SIGINT, ctrl_c)
    try:
        yield ctrl_c
    finally:
        with suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)


def run_command(work: Coroutine[Any, Any, int]) -> int:
    """``asyncio.run(work)``; a Ctrl-C that stopped it before any run started (its task was
    cancelled) is a ``KeyboardInterrupt`` for ``main``: "interrupted", exit status 130."""
    try:
        return asyncio.run(work)
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
