"""``orchestrator ui``: the live view of a running ``orchestrator serve --http``, in a browser.

It checks that a server answers at the address, prints the page's URL and opens it when this
machine has a graphical browser. With ``ORCHESTRATOR_HTTP_TOKEN`` set, the browser is handed
the token once in the address (the server swaps it for a session cookie and drops it from the
address); the token itself is never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import webbrowser
from urllib.parse import quote

from rich.console import Console

from multi_task_orchestrator.server.cli.common import EXIT_OK, UsageError
from multi_task_orchestrator.server.cli.parser import DEFAULT_HTTP_PORT
from multi_task_orchestrator.server.settings import load_settings

PROBE_SECONDS = 5.0


def cmd_ui(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = load_settings()
    token = settings.http_token.get_secret_value() if settings.http_token else None
    shown = f"[{args.host}]" if ":" in args.host else args.host
    page = f"http://{shown}:{args.port}/ui/" + (
        f"runs/{quote(args.run, safe='')}" if args.run else ""
    )
    _check_server(f"http://{shown}:{args.port}/ui/", token, args.port)
    if args.run:
        api = f"http://{shown}:{args.port}/ui/api/runs/{quote(args.run, safe='')}"
        _check_run(api, args.run, token)
    out.print(page, markup=False, soft_wrap=True)
    if token:
        err.print(
            "the page asks for the server's token: open it once as "
            f"{page}?token=<ORCHESTRATOR_HTTP_TOKEN> (a cookie keeps you in)",
            markup=False,
            soft_wrap=True,
        )
    if args.no_open or not _has_graphical_browser():
        return EXIT_OK
    opened = page + (f"?token={quote(token, safe='')}" if token else "")
    if not webbrowser.open(opened):
        err.print("could not open a web browser; open the address above yourself", markup=False)
    return EXIT_OK


def _check_server(page: str, token: str | None, port: int) -> None:
    import httpx  # here: the other commands start without it

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.get(page, headers=headers, timeout=PROBE_SECONDS)
    except httpx.HTTPError:
        raise UsageError(
            f"no server answers at {page}: start one with 'orchestrator serve --http"
            f"{'' if port == DEFAULT_HTTP_PORT else f' --port {port}'}' (or give its --host "
            "and --port)"
        ) from None
    if answer.status_code == 401:
        raise UsageError(
            "the server refused the token in ORCHESTRATOR_HTTP_TOKEN: set it to the server's token"
            if token
            else "the server wants a token this shell does not have: set ORCHESTRATOR_HTTP_TOKEN "
            "to the server's token"
        )
    if answer.status_code != 200:
        raise UsageError(
            f"{page} answered HTTP {answer.status_code}; is it an orchestrator serve --http?"
        )


def _check_run(api: str, run: str, token: str | None) -> None:
    """A run the server does not know is an error naming it (the server's answer lists the
    ids it knows), not an address to a page that has nothing to show."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.get(api, headers=headers, timeout=PROBE_SECONDS)
    except httpx.HTTPError:
        return  # the page will say what is wrong
    if answer.status_code != 404:
        return
    try:
        problem = answer.json().get("error")
    except (ValueError, AttributeError):
        problem = None  # no page has that address: an id with a '/' in it, say
    raise UsageError(str(problem or f"no orchestration has the id {run!r}"))


def _has_graphical_browser() -> bool:
    """A browser that opens a window: on Linux and the BSDs only with a display (a text
    browser would take over this terminal)."""
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")) and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True
