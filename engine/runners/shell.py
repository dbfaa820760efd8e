"""The ``shell`` task type: run one command on this machine, off unless the server allows it.

A document can use it only when the server runs with ``ORCHESTRATOR_ALLOW_SHELL=1`` (the
runner's setting ``ShellSettings.allow``); otherwise validation refuses the document, naming that
setting. The command is an argv list, never a shell string, so nothing is interpreted by a shell
unless ``argv`` itself starts one.

- ``cwd`` is a folder inside the workspace (the same guard as ``file_processing``: no ``..``, no
  absolute path elsewhere, no symbolic link out); by default the workspace itself.
- The environment is built, not inherited: only ``PATH``, ``HOME``, ``LANG``, ``LC_*`` and
  ``TMPDIR`` pass from the server's environment, so the server's own settings and credentials
  (``ORCHESTRATOR_*`` and everything else) never reach the command. ``env`` adds variables; a
  value may hold ``${vault.NAME}``, revealed with no destination host: only a secret stored for
  any host (``*``) can be given to a local command, because the command may send it anywhere.
  Secrets are not allowed in ``argv``, where every local user could read them in the process
  list.
- ``stdin`` is written to the command's standard input (otherwise it reads nothing).
- ``stdout`` and ``stderr`` are each kept up to ``max_output`` bytes; the rest is read and
  dropped, and the output says ``truncated: true``.
- An exit code outside ``expect_exit`` fails the attempt (class ``error``) with the end of what
  the command wrote; ``timeout`` fails it with class ``timeout``. The command runs in its own
  process group, and the whole group is killed when the attempt ends for any reason (timeout,
  cancel, or the command exiting and leaving children behind), so nothing is left running.

Output: ``{exit_code, stdout, stderr, truncated}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, Field, field_validator

from multi_task_orchestrator.engine.document.units import Duration
from multi_task_orchestrator.engine.errors import ConfigError, TaskError
from multi_task_orchestrator.engine.expressions import secret_names
from multi_task_orchestrator.engine.runners.base import RunContext, Runner, RunnerConfig
from multi_task_orchestrator.engine.runners.files.paths import inside, workspace_root

DEFAULT_MAX_OUTPUT = 1024 * 1024
PASSED_VARIABLES = frozenset({"PATH", "HOME", "LANG", "TMPDIR"})
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CHUNK = 64 * 1024
_EXCERPT = 500
# Read past max_output by more than the longest form of a secret the redactor masks (a 64 KiB
# value, URL-encoded), so one that straddles the cut is masked whole before the text is cut,
# not cut and then missed.
_SECRET_SLACK = 256 * 1024
_DRAIN_SECONDS = 5.0  # after the group is killed, how long to wait for the pipes to close


class ShellConfig(RunnerConfig):
    """Config of a ``shell`` task."""

    argv: list[str] = Field(
        min_length=1, description="the command and its arguments, e.g. [wc, -l, data.csv]"
    )
    cwd: str | None = Field(None, description="a folder inside the workspace; default: the root")
    timeout: Duration | None = Field(None, gt=0, description="stop the command after this long")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="extra environment variables; values may hold ${vault.NAME}",
    )
    stdin: str | None = Field(None, description="text written to the command's standard input")
    max_output: int = Field(
        DEFAULT_MAX_OUTPUT,
        ge=1,
        le=64 * 1024 * 1024,
        description="bytes kept of stdout and of stderr each; the rest is dropped",
    )
    expect_exit: list[int] = Field([0], min_length=1, description="exit codes that mean success")

    @field_validator("argv")
    @classmethod
    def _plain_arguments(cls, argv: list[str]) -> list[str]:
        if not argv[0].strip():
            raise ValueError("argv[0], the command, cannot be empty")
        if any("\x00" in argument for argument in argv):
            raise ValueError("an argument cannot hold a NUL character")
        if secret_names(argv):
            raise ValueError(
                "a secret cannot be a command argument (other users can read the process list); "
                "pass it in env, e.g. env: {API_TOKEN: '${vault.NAME}'}"
            )
        return argv

    @field_validator("env")
    @classmethod
    def _variable_names(cls, env: dict[str, str]) -> dict[str, str]:
        for name, value in env.items():
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(
                    f"'{name}' is not an environment variable name (letters, digits and '_', "
                    "not starting with a digit)"
                )
            if "\x00" in value:
                raise ValueError(f"the value of {name} cannot hold a NUL character")
        return env


def scrubbed_environment(source: dict[str, str] | None = None) -> dict[str, str]:
    """The variables a command inherits from ``source`` (the server's environment)."""
    source = dict(os.environ) if source is None else source
    kept = {
        name: value
        for name, value in source.items()
        if name in PASSED_VARIABLES or name.startswith("LC_")
    }
    kept.setdefault("PATH", os.defpath)
    return kept


class ShellSettings(BaseModel):
    """The ``shell`` runner's settings: the switch that allows it."""

    allow: bool = Field(
        False,
        description="allow the `shell` task type (commands on this machine); when off, a "
        "document using it is refused at validation",
        json_schema_extra={"env": "ORCHESTRATOR_ALLOW_SHELL"},
    )


class ShellRunner(Runner[ShellConfig]):
    """Runs an argv in the workspace with a scrubbed environment, a timeout and bounded output."""

    type_name: ClassVar[str] = "shell"
    opt_in: ClassVar[str | None] = "set ORCHESTRATOR_ALLOW_SHELL=1 to allow it"
    listing_rank: ClassVar[int] = 60
    config_model: ClassVar[type[ShellConfig]] = ShellConfig
    settings_model: ClassVar[type[ShellSettings]] = ShellSettings
    secret_fields: ClassVar[frozenset[str]] = frozenset({"env", "stdin"})
    summary: ClassVar[str] = (
        "Runs one command (an argv list, no shell string) in a workspace folder with a scrubbed "
        "environment, a timeout and bounded output; off unless ORCHESTRATOR_ALLOW_SHELL=1."
    )
    example: ClassVar[dict[str, Any]] = {
        "id": "count_lines",
        "type": "shell",
        "config": {"argv": ["wc", "-l", "inbox/items.csv"], "timeout": "30s"},
        "dependencies": [],
    }

    def enabled(self) -> bool:
        return self.settings_as(ShellSettings).allow

    async def run(self, config: ShellConfig, ctx: RunContext) -> Any:
        root = workspace_root(ctx)
        cwd = inside(root, config.cwd, "cwd") if config.cwd is not None else root
        if not cwd.is_dir():
            raise ConfigError(f"cwd '{config.cwd}' is not a folder in the workspace {root}")
        env = scrubbed_environment()
        for name, value in config.env.items():
            env[name] = await ctx.reveal(value, host=None)
        stdin = await ctx.reveal(config.stdin, host=None) if config.stdin is not None else None
        command = config.argv[0]
        process = await _start(config.argv, cwd, env, piped_input=stdin is not None)
        ctx.log(f"started {command} (pid {process.pid}) in {_shown(root, cwd)}")
        stdout = _BoundedReader(process.stdout, config.max_output)
        stderr = _BoundedReader(process.stderr, config.max_output)
        readers = [asyncio.create_task(stdout.read()), asyncio.create_task(stderr.read())]
        feeder = asyncio.create_task(_feed(process, stdin))
        try:
            async with asyncio.timeout(config.timeout):
                exit_code = await process.wait()
        except TimeoutError:
            raise TaskError(
                f"{command} timed out after {config.timeout:g}s; it and its child processes "
                "were stopped",
                "timeout",
            ) from None
        finally:
            _kill_group(process.pid)
            feeder.cancel()
            await _drain(readers)

        truncated = stdout.dropped > 0 or stderr.dropped > 0
        if truncated:
            ctx.log(
                f"{command}: output over {config.max_output:,} bytes was dropped "
                f"({stdout.dropped:,} bytes of stdout, {stderr.dropped:,} of stderr)",
                level="warning",
            )
        result = {
            "exit_code": exit_code,
            "stdout": stdout.text(ctx.secrets.redact),
            "stderr": stderr.text(ctx.secrets.redact),
            "truncated": truncated,
        }
        if exit_code not in config.expect_exit:
            expected = ", ".join(str(code) for code in config.expect_exit)
            raise TaskError(
                f"{command} {_ending(exit_code)} (expected {expected}): "
                f"{_excerpt(str(result['stderr'] or result['stdout']))}",
                "error",
            )
        ctx.log(f"{command} exited with code {exit_code}")
        return result


async def _start(
    argv: list[str], cwd: Path, env: dict[str, str], *, piped_input: bool
) -> asyncio.subprocess.Process:
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE if piped_input else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group, so the whole group can be killed
        )
    except FileNotFoundError:
        raise ConfigError(
            f"command '{argv[0]}' not found (looked in PATH={env.get('PATH', '')}); give its "
            "full path or install it"
        ) from None
    except PermissionError:
        raise ConfigError(f"command '{argv[0]}' cannot be run: permission denied") from None
    except OSError as exc:
        raise ConfigError(f"command '{argv[0]}' cannot be run: {exc.strerror or exc}") from None


async def _feed(process: asyncio.subprocess.Process, text: str | None) -> None:
    if text is None or process.stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        process.stdin.write(text.encode())
        await process.stdin.drain()
        process.stdin.close()


class _BoundedReader:
    """Reads a pipe to its end, keeping the first ``limit`` bytes (and ``_SECRET_SLACK`` more,
    for masking secrets before the cut) and counting the bytes past ``limit``."""

    def __init__(self, stream: asyncio.StreamReader | None, limit: int) -> None:
        self.stream = stream
        self.limit = limit
        self.kept = bytearray()
        self.total = 0

    @property
    def dropped(self) -> int:
        return max(0, self.total - self.limit)

    async def read(self) -> None:
        if self.stream is None:
            return
        while chunk := await self.stream.read(_CHUNK):
            self.total += len(chunk)
            room = self.limit + _SECRET_SLACK - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]

    def text(self, redact: Callable[[str], str]) -> str:
        """The first ``limit`` bytes as text, with every secret masked before the cut."""
        text = redact(self.kept.decode("utf-8", errors="replace"))
        cut = text.encode("utf-8")[: self.limit]
        return cut.decode("utf-8", errors="ignore") if self.dropped else text


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _drain(readers: list[asyncio.Task[None]]) -> None:
    """Let the readers finish once the group is gone; a process that left the group and holds
    a pipe open does not hold the task."""
    done, pending = await asyncio.wait(readers, timeout=_DRAIN_SECONDS)
    for task in pending:
        task.cancel()
    for task in done:
        task.exception()  # a reader's error is not the attempt's; retrieve it so it is not logged


def _ending(exit_code: int) -> str:
    if exit_code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-exit_code).name}"
    return f"exited with code {exit_code}"


def _excerpt(text: str) -> str:
    text = text.strip()
    if not text:
        return "it wrote nothing"
    return text if len(text) <= _EXCERPT else "..." + text[-_EXCERPT:]


def _shown(root: Path, cwd: Path) -> str:
    relative = cwd.relative_to(root).as_posix()
    return "the workspace" if relative == "." else relative


RUNNER = ShellRunner
