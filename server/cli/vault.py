"""``orchestrator vault``: set, list, rm, rotate and import secrets of the encrypted vault.
Values are read from a hidden prompt or stdin, never from the command line, never printed."""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from rich.console import Console

from multi_task_orchestrator.server.cli.common import EXIT_OK, UsageError
from multi_task_orchestrator.server.cli.parser import HOSTS_EXAMPLE
from multi_task_orchestrator.server.settings import load_settings, open_vault
from multi_task_orchestrator.vault.envfile import read_env_file
from multi_task_orchestrator.vault.secret import MAX_VALUE_BYTES


def _hosts(args: argparse.Namespace) -> list[str]:
    if not args.hosts or not args.hosts.strip():
        raise UsageError(
            "--hosts is required: name the hosts the secret may be sent to, " + HOSTS_EXAMPLE
        )
    return [host.strip() for host in args.hosts.split(",") if host.strip()]


def _read_hidden(prompt: str, *, confirm: bool = False) -> str:
    """A value from a hidden prompt on a terminal, else all of stdin minus one final newline."""
    if sys.stdin.isatty():
        value = getpass.getpass(prompt)
        if confirm and getpass.getpass("again, to confirm: ") != value:
            raise UsageError("the two entries differ; nothing was changed")
        return value
    # no further than the largest value and its line end: stdin may never end (/dev/zero)
    text = sys.stdin.read(MAX_VALUE_BYTES + 3)
    if len(text) > MAX_VALUE_BYTES + 2:
        raise UsageError(
            f"stdin holds more than {MAX_VALUE_BYTES // 1024} KiB; a value may be at most that; "
            "nothing was changed"
        )
    return text.removesuffix("\n").removesuffix("\r")


def cmd_set(args: argparse.Namespace, out: Console, err: Console) -> int:
    hosts = _hosts(args)
    vault = open_vault(load_settings())
    value = _read_hidden(f"value for {args.name} (hidden): ")
    info = vault.set(args.name, value, allowed_hosts=hosts, description=args.description)
    out.print(f"stored {info.name} (allowed hosts: {', '.join(info.allowed_hosts)})", markup=False)
    return EXIT_OK


def cmd_list(args: argparse.Namespace, out: Console, err: Console) -> int:
    vault = open_vault(load_settings())
    secrets = vault.list()
    if args.json:
        out.print_json(json.dumps([info.model_dump() for info in secrets]))
        return EXIT_OK
    if not secrets:
        out.print(
            "no secrets yet; store one with 'orchestrator vault set NAME --hosts HOST'",
            markup=False,
        )
    for info in secrets:
        hosts = ", ".join(info.allowed_hosts)
        used = f"last used {info.last_used_at}" if info.last_used_at else "never used"
        out.print(f"{info.name}  hosts: {hosts}  updated {info.updated_at}  {used}", markup=False)
        if info.description:
            out.print(f"    {info.description}", markup=False)
    return EXIT_OK


def cmd_rm(args: argparse.Namespace, out: Console, err: Console) -> int:
    open_vault(load_settings()).delete(args.name)
    out.print(f"deleted {args.name}", markup=False)
    return EXIT_OK


def cmd_rotate(args: argparse.Namespace, out: Console, err: Console) -> int:
    vault = open_vault(load_settings())
    if args.new_passphrase:
        vault.rotate(new_passphrase=_read_hidden("new passphrase (hidden): ", confirm=True))
        out.print(
            f"re-encrypted {len(vault.names())} secret(s) under the new passphrase; from now on "
            "set ORCHESTRATOR_VAULT_PASSPHRASE to it",
            markup=False,
        )
    elif args.new_key:
        vault.rotate(new_key=_read_hidden("new Fernet key (hidden): "))
        out.print(
            f"re-encrypted {len(vault.names())} secret(s) under the new key; from now on set "
            "ORCHESTRATOR_VAULT_KEY to it",
            markup=False,
        )
    else:
        vault.rotate()
        out.print(
            f"re-encrypted {len(vault.names())} secret(s) under a new key ({vault.key_source})",
            markup=False,
        )
    return EXIT_OK


def cmd_import(args: argparse.Namespace, out: Console, err: Console) -> int:
    hosts = _hosts(args)
    values = read_env_file(args.file)
    vault = open_vault(load_settings())
    stored = vault.set_many(values, allowed_hosts=hosts, description=args.description)
    names = ", ".join(info.name for info in stored)
    out.print(f"imported {len(stored)} secret(s) for {', '.join(hosts)}: {names}", markup=False)
    return EXIT_OK
