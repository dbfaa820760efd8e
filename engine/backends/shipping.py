"""What travels between the server and a cluster worker for one attempt, all plain and picklable.

``AttemptRequest`` goes out: the runner's type name and its settings (as JSON data: the worker's
runner uses the server's settings), the validated config as data, the attempt's identity and
fan-out item, the network policy, what the budgets leave the task when the attempt starts, and
``ShippedSecrets`` — the values of exactly the secrets the task names, each with the hosts it
is allowed for, so the worker enforces the hosts itself. ``AttemptResult`` comes back: the
output or the error, the log lines, the model usage the runner recorded (counted on the server
as it arrives, a failed attempt's too), the files written to the artifacts folder, and the
secrets the runner saved (a refreshed browser session), which the server stores in its vault.
Nothing here touches Dask.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from multi_task_orchestrator.engine.document.units import Rate
from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.network import NetworkPolicy
from multi_task_orchestrator.engine.redaction import Redactor
from multi_task_orchestrator.engine.secret_hosts import ANY_HOST, host_allowed, refusal
from multi_task_orchestrator.engine.secrets import NoVault
from multi_task_orchestrator.engine.usage import BudgetLeft, UsageRecord

LogLine = tuple[str, str, dict[str, Any] | None]
Outcome = Literal["succeeded", "failed", "cancelled", "lost"]


@dataclass(slots=True)
class SavedSecret:
    """A secret a runner stored on the worker, to be saved in the server's vault."""

    name: str
    value: str
    allowed_hosts: list[str]
    description: str | None


@dataclass
class ShippedSecrets:
    """A ``SecretResolver`` over the secrets sent with one attempt; never stored on the worker.

    ``values`` maps a name to its value and allowed hosts; ``refused`` maps a name the server
    could not send to the reason (raised when the runner asks for it); ``known`` answers
    ``names()``. ``vault`` False means the server has no vault, and every use fails as there.
    """

    values: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    known: frozenset[str] | None = None
    vault: bool = True
    saved: list[SavedSecret] = field(default_factory=list)

    async def resolve(self, name: str, *, host: str | None) -> str:
        if not self.vault:
            return await NoVault().resolve(name, host=host)
        if name in self.refused:
            raise TaskError(self.refused[name], "config")
        entry = self.values.get(name)
        if entry is None:
            raise TaskError(
                f"secret '{name}' was not sent to the worker: only the secrets a task's config "
                f"names as ${{vault.NAME}} travel with it; reference ${{vault.{name}}} in the "
                "task's config",
                "config",
            )
        value, allowed_hosts = entry
        allowed = host_allowed(host, allowed_hosts) if host else ANY_HOST in allowed_hosts
        if not allowed:
            raise TaskError(refusal(name, host, list(allowed_hosts)), "config")
        return value

    def names(self) -> frozenset[str] | None:
        return self.known

    def redact(self, text: str) -> str:
        values = [value for value, _ in self.values.values()]
        values += [saved.value for saved in self.saved]
        return Redactor(values).redact(text) if values else text

    async def store(
        self, name: str, value: str, *, allowed_hosts: list[str], description: str | None = None
    ) -> None:
        if not self.vault:
            await NoVault().store(name, value, allowed_hosts=allowed_hosts)
        self.saved.append(SavedSecret(name, value, list(allowed_hosts), description))
        self.values[name] = (value, tuple(allowed_hosts))
        self.refused.pop(name, None)


@dataclass(slots=True)
class AttemptRequest:
    """One attempt of one task, as sent to a worker."""

    key: str  # unique per attempt: the Dask key and the worker's handle for cancelling it
    runner_type: str
    settings: dict[str, Any] | None  # the runner's settings on the server, as JSON data
    config: dict[str, Any]
    orchestration_id: str
    task_id: str
    attempt: int
    item: Any
    index: int | None
    secrets: ShippedSecrets
    secret_names: frozenset[str] | None
    policy: NetworkPolicy
    per_host: int
    rates: dict[str, Rate]
    workspace: str | None
    budget: BudgetLeft | None = None  # what the budgets leave the task as the attempt starts


@dataclass(slots=True)
class AttemptResult:
    """What a worker sends back; ``lost`` means the attempt had started on a worker that died."""

    key: str
    outcome: Outcome
    worker: str
    output: Any = None
    error: str | None = None
    error_class: str | None = None
    retry_after: float | None = None
    logs: list[LogLine] = field(default_factory=list)
    usage: list[UsageRecord] = field(default_factory=list)  # the model calls, in order
    artifacts: dict[str, bytes] = field(default_factory=dict)  # path under the run folder
    saved_secrets: list[SavedSecret] = field(default_factory=list)


def collect_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its relative POSIX path (hidden temporary files skipped)."""
    files: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            files[path.relative_to(folder).as_posix()] = path.read_bytes()
    return files


def write_files(folder: Path, files: dict[str, bytes]) -> list[Path]:
    """Write ``files`` (from ``collect_files``) under ``folder``, replacing files of that name.

    Only the artifacts folder comes back from a worker: a name outside ``artifacts/`` (the run's
    results, its log, a path with ``..``, an absolute one) is refused before anything is
    written, and a name this file system cannot hold is a TaskError naming it."""
    root = folder.resolve()
    artifacts = root / "artifacts"
    targets: list[tuple[str, Path]] = []
    for name in files:
        try:
            target = (root / name).resolve()
        except (OSError, ValueError):
            target = root
        if not target.is_relative_to(artifacts) or target == artifacts:
            raise TaskError(
                f"a worker sent a file named {_shown(name)}, which is not in the run's artifacts "
                "folder; nothing it sent was written (is the worker running the same version "
                "of multi-task-orchestrator?)"
            )
        targets.append((name, target))
    written: list[Path] = []
    for name, target in targets:
        temporary = target.with_name(f".{target.name}.part")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(files[name])
            temporary.replace(target)
        except (OSError, ValueError) as exc:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise TaskError(
                f"cannot write the artifact {_shown(name)} a worker sent: {reason}"
            ) from None
        written.append(target)
    return written


def _shown(name: str) -> str:
    return repr(name if len(name) <= 120 else name[:120] + "…")
