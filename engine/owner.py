"""Which process owns a run: this process's description, whether a recorded owner lives, and
what to tell a person about a run another process holds (``HeldRun``).

A run's owner is recorded with the process that holds it (``ProcessInfo``: host, pid, start
time and the command line). Another process on the same machine can then tell at once that the
owner is gone — its pid no longer exists, or belongs to a process started at another time (the
pid was reused) — instead of waiting for the owner's lease to expire. An owner on another
machine (or in another pid namespace, or recorded without this information) cannot be checked:
its lease decides.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time
from dataclasses import asdict, dataclass
from enum import Enum
from functools import cache
from pathlib import Path

from multi_task_orchestrator.engine.reports.text import iso

PROC = Path("/proc")


class Liveness(Enum):
    alive = "alive"
    dead = "dead"  # on this machine, and its process is gone (or its pid was reused)
    unknown = "unknown"  # another machine, or nothing to check it by: its lease decides


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A process as a run's owner row records it (JSON in ``orchestrations.owner_process``)."""

    host: str
    pid: int
    started: float | None = None  # when the process started (epoch seconds), to show
    start_ticks: int | None = None  # /proc/<pid>/stat field 22: tells a reused pid apart
    boot_id: str | None = None  # with pid_ns: the same machine and the same pid numbering
    pid_ns: str | None = None
    command: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> ProcessInfo | None:
        """The recorded process, or None when nothing (readable) was recorded."""
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(
                host=str(data["host"]),
                pid=int(data["pid"]),
                started=data.get("started"),
                start_ticks=data.get("start_ticks"),
                boot_id=data.get("boot_id"),
                pid_ns=data.get("pid_ns"),
                command=str(data.get("command") or ""),
            )
        except (ValueError, TypeError, KeyError):
            return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks after boot) of a process; None when it is gone."""
    text = _read(PROC / str(pid) / "stat")
    if text is None:
        return None
    fields = text.rpartition(")")[2].split()  # the name may hold spaces and parentheses
    try:
        return fields[0], int(fields[19])  # fields 3 and 22 of proc(5)
    except (IndexError, ValueError):
        return None


def _boot_time() -> float | None:
    for line in (_read(PROC / "stat") or "").splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink(PROC / "self" / "ns" / "pid")
    except OSError:
        return None


def _command_line() -> str:
    """This process's command, as a person would type it (``orchestrator run flow.yaml``)."""
    args = list(sys.argv) or [sys.executable]
    program = Path(args[0])
    if program.name == "__main__.py" and program.parent.parts[-2:] == ("server", "cli"):
        # python -m multi_task_orchestrator.server.cli
        args[0] = "orchestrator"
    else:
        args[0] = program.name or args[0]
    text = shlex.join(args)
    return text if len(text) <= 200 else text[:199] + "…"


@cache
def _this_process(pid: int) -> ProcessInfo:
    stat = _stat(pid)
    ticks = stat[1] if stat else None
    boot = _boot_time()
    started = time.time()
    if ticks is not None and boot is not None:
        started = boot + ticks / os.sysconf("SC_CLK_TCK")
    return ProcessInfo(
        host=socket.gethostname(),
        pid=pid,
        started=round(started, 2),
        start_ticks=ticks,
        boot_id=_read(PROC / "sys" / "kernel" / "random" / "boot_id"),
        pid_ns=_pid_namespace(),
        command=_command_line(),
    )


def this_process() -> ProcessInfo:
    """The process running this code."""
    return _this_process(os.getpid())


def liveness(owner: ProcessInfo | None) -> Liveness:
    """Whether a recorded owner still runs; ``unknown`` when this machine cannot tell."""
    if owner is None:
        return Liveness.unknown
    me = this_process()
    if owner.host != me.host or owner.boot_id != me.boot_id or owner.pid_ns != me.pid_ns:
        return Liveness.unknown
    if owner.pid == me.pid:
        return Liveness.alive
    if me.start_ticks is None:  # no /proc: all that can be told is whether the pid exists
        return _pid_exists(owner.pid)
    stat = _stat(owner.pid)
    if stat is None:  # gone, unless /proc hides other users' processes (hidepid)
        return _pid_exists(owner.pid)
    if stat[0] in ("Z", "X"):  # exited, not yet reaped
        return Liveness.dead
    if owner.start_ticks is not None and stat[1] != owner.start_ticks:
        return Liveness.dead  # the pid now belongs to another process
    return Liveness.alive


def _pid_exists(pid: int) -> Liveness:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return Liveness.dead
    except OSError:  # it exists, as another user's process
        pass
    return Liveness.alive


def describe(owner: ProcessInfo) -> str:
    """``process 1234 on this machine (orchestrator run flow.yaml, started
    2026-11-24T07:20:31.123Z)``."""
    where = "this machine" if owner.host == this_process().host else f"host {owner.host}"
    details = [owner.command] if owner.command else []
    if owner.started is not None:
        details.append(f"started {iso(owner.started)}")
    suffix = f" ({', '.join(details)})" if details else ""
    return f"process {owner.pid} on {where}{suffix}"


@dataclass(frozen=True, slots=True)
class HeldRun:
    """An unfinished run that another process holds; ``explain()`` says so to a person."""

    id: str
    status: str
    owner: ProcessInfo | None
    liveness: Liveness
    lease_until: float | None

    def explain(self) -> str:
        who = describe(self.owner) if self.owner else "another process"
        text = f"orchestration {self.id} is {self.status} in {who}; it finishes there"
        if self.liveness != Liveness.alive and self.lease_until is not None:
            # the owner cannot be checked from here: its lease decides
            until = iso(self.lease_until)
            text += (
                f" (if that process is gone, `orchestrator resume` takes the run over once "
                f"its lease expires at {until})"
            )
        return (
            f"{text}. Watch it with `orchestrator status {self.id}`; to stop it, stop it "
            "there (Ctrl-C cancels an `orchestrator run`; the `cancel_orchestration` tool "
            "cancels a run of `orchestrator serve`)"
        )
