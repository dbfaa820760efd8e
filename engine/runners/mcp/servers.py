"""The servers file: which MCP servers ``mcp`` tasks may call, in the standard ``mcpServers``
format (the one Claude Desktop, Claude Code and Cursor read)::

    {"mcpServers": {
        "files": {"command": "npx",
                  "args": ["-y", "@modelcontextprotocol/server-filesystem", "/data"],
                  "env": {"TOKEN": "${vault.FILES_TOKEN}"}},
        "search": {"url": "https://mcp.example.com/mcp",
                   "headers": {"Authorization": "Bearer ${vault.SEARCH_KEY}"}}}}

A server with ``command`` (``type: stdio``, the default) is a local process talking over its
standard input and output; one with ``url`` (``type: http`` or ``streamable-http``) a remote
server over streamable HTTP. Other top-level keys are ignored, so a whole Claude Desktop
config file can be named. In a server entry, ``disabled: true`` leaves the server out, and the
keys other clients keep there (``autoApprove``, ``alwaysAllow``) are ignored; any other unknown
key is an error with a did-you-mean. ``concurrency`` (this project's own key) caps the calls
in flight to that server.

Values of ``env`` and ``headers`` may hold ``${vault.NAME}``, revealed when the session opens:
a remote server's headers for the URL's host only (the secret's allowed hosts, as everywhere);
a stdio server's environment with no destination host, so only a secret allowed for any host
(``*``) can go there — the process may send what it gets anywhere. Secrets are refused in
``command``, ``args`` and ``url``.

``load_servers(path)`` reads and checks the file; ``ServersFileError`` names the file and the
problem.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from multi_task_orchestrator.engine.expressions import secret_names
from multi_task_orchestrator.engine.issues import did_you_mean

MAX_FILE_BYTES = 1024 * 1024
STDIO_KEYS = ("type", "command", "args", "env", "cwd", "concurrency")
REMOTE_KEYS = ("type", "url", "headers", "concurrency")
IGNORED_KEYS = ("disabled", "autoApprove", "alwaysAllow")
STDIO_TYPES = ("stdio",)
REMOTE_TYPES = ("http", "streamable-http", "streamable_http", "streamableHttp")


class ServersFileError(ValueError):
    """The servers file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class StdioServer:
    """A local server started as a process that speaks MCP over stdin and stdout."""

    name: str
    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    concurrency: int | None = None

    @property
    def shown(self) -> str:
        return " ".join((self.command, *self.args))


@dataclass(frozen=True, slots=True)
class RemoteServer:
    """A server reached over streamable HTTP."""

    name: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    concurrency: int | None = None

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower().rstrip(".")

    @property
    def shown(self) -> str:
        return self.url


ServerSpec = StdioServer | RemoteServer


def load_servers(path: Path) -> dict[str, ServerSpec]:
    """The enabled servers of the file at ``path``, by name; ServersFileError if unusable."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ServersFileError(f"{path}: {size:,} bytes; a servers file holds at most 1 MB")
        text = path.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise ServersFileError(f"{path} is a folder, not a JSON file") from None
    except FileNotFoundError:
        raise ServersFileError(f"{path} does not exist") from None
    except UnicodeDecodeError:
        raise ServersFileError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise ServersFileError(f"{path} cannot be read: {exc.strerror or exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ServersFileError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    try:
        return parse_servers(document)
    except ServersFileError as exc:
        raise ServersFileError(f"{path}: {exc}") from None


def parse_servers(document: Any) -> dict[str, ServerSpec]:
    """The enabled servers of a parsed servers file; ServersFileError naming the problem."""
    if not isinstance(document, dict) or "mcpServers" not in document:
        raise ServersFileError(
            'expected an object with "mcpServers", e.g. {"mcpServers": {"files": {"command": '
            '"npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/data"]}}}'
        )
    entries = document["mcpServers"]
    if not isinstance(entries, dict):
        raise ServersFileError('"mcpServers" must be an object: server name -> its entry')
    servers: dict[str, ServerSpec] = {}
    for name, entry in entries.items():
        where = f"mcpServers.{name}"
        if not name.strip():
            raise ServersFileError("a server name cannot be empty")
        if not isinstance(entry, dict):
            raise ServersFileError(f"{where} must be an object with command or url")
        if entry.get("disabled") is True:
            continue
        servers[name] = _server(name, entry, where)
    return servers


def _server(name: str, entry: dict[str, Any], where: str) -> ServerSpec:
    kind = entry.get("type")
    if kind is not None and kind not in STDIO_TYPES + REMOTE_TYPES:
        sse = " (the SSE transport is deprecated; use the server's streamable HTTP URL)"
        raise ServersFileError(
            f"{where}.type {kind!r} is not supported: use stdio, http or streamable-http"
            + (sse if kind == "sse" else "")
        )
    remote = kind in REMOTE_TYPES or (kind is None and "url" in entry and "command" not in entry)
    allowed = REMOTE_KEYS if remote else STDIO_KEYS
    for key in entry:
        if key not in allowed and key not in IGNORED_KEYS:
            takes = f"a {'remote' if remote else 'stdio'} server takes {', '.join(allowed)}"
            hint = did_you_mean(key, allowed)
            raise ServersFileError(
                f"{where} has an unknown key {key!r}" + (f"; {hint}" if hint else f" ({takes})")
            )
    concurrency = _concurrency(entry.get("concurrency"), where)
    if remote:
        url = _text(entry.get("url"), f"{where}.url")
        if urlsplit(url).scheme.lower() not in ("http", "https") or not urlsplit(url).hostname:
            raise ServersFileError(f"{where}.url {url!r} is not an http or https URL")
        _no_secret(url, f"{where}.url")
        headers = _strings(entry.get("headers", {}), f"{where}.headers")
        return RemoteServer(name, url, headers, concurrency)
    command = _text(entry.get("command"), f"{where}.command")
    args = entry.get("args", [])
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise ServersFileError(f"{where}.args must be a list of strings")
    _no_secret(args, f"{where}.args")
    _no_secret(command, f"{where}.command")
    env = _strings(entry.get("env", {}), f"{where}.env")
    cwd = entry.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise ServersFileError(f"{where}.cwd must be a folder's path")
    return StdioServer(name, command, tuple(args), env, cwd, concurrency)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ServersFileError(f"{where} is required: a non-empty string")
    return value.strip()


def _strings(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ServersFileError(f"{where} must be an object of strings")
    return dict(value)


def _concurrency(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 256:
        raise ServersFileError(f"{where}.concurrency must be a whole number from 1 to 256")
    return value


def _no_secret(value: Any, where: str) -> None:
    if secret_names(value):
        raise ServersFileError(
            f"{where} cannot hold a secret (${{vault.NAME}}); secrets go in env (stdio) or "
            "headers (remote)"
        )
