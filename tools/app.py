"""The live view page, and the MCP App that shows it inline in a chat.

``live_view.html`` (package data beside this module) is one self-contained page — no build, no
CDN — that draws a run: progress, task tree, approvals with their buttons, timeline, failures
with their chains, artifacts, log. ``page`` fills in where its data comes from: in ``app`` mode
it asks the MCP host over the Apps bridge (``postMessage`` JSON-RPC: ``tools/call get_status``,
``resources/read orchestration://{id}/live``); in ``web`` mode it fetches ``/ui/api/...`` of
``orchestrator serve --http`` (``server/ui``).

As an App (SDK ``mcp.server.apps``, extension ``io.modelcontextprotocol/ui``) the page is the
resource ``ui://orchestrator/live-view.html`` and ``submit_orchestration``, ``get_status`` and
``wait_for_orchestration`` name it in ``_meta.ui.resourceUri``: a host with Apps renders it
when one of them is called. Hosts without Apps ignore the binding; those tools' answers carry
the same information as text, as they always have.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from importlib.resources import files
from typing import Literal

from mcp.server.apps import Apps
from mcp.server.mcpserver.tools import Tool

LIVE_VIEW_URI = "ui://orchestrator/live-view.html"
BOUND_TOOLS = frozenset({"submit_orchestration", "get_status", "wait_for_orchestration"})


@cache
def _template() -> str:
    return files(__package__).joinpath("live_view.html").read_text(encoding="utf-8")


def page(
    mode: Literal["app", "web"],
    *,
    base: str = "/ui",
    run: str | None = None,
    nonce: str = "",
    refresh_ms: int = 1000,
) -> str:
    """The page for ``mode``; ``run`` opens that run at once (web), ``nonce`` is the CSP nonce
    its inline script and style carry (web; an App's host sets its own policy)."""
    config = {"mode": mode, "base": base, "run": run, "refresh_ms": refresh_ms}
    # JSON inside <script>: no "<" may end the element early, whatever the run id holds
    text = json.dumps(config).replace("<", "\\u003c").replace(">", "\\u003e")
    return _template().replace("__CONFIG__", text).replace("__NONCE__", nonce)


def live_view_app() -> Apps:
    """The Apps extension holding the live view resource, for ``MCPServer(extensions=[...])``."""
    apps = Apps()
    apps.add_html_resource(
        LIVE_VIEW_URI,
        page("app"),
        name="live-view",
        title="Orchestration live view",
        description="A run's progress, tasks, approvals, timeline and failures, kept up to date.",
        prefers_border=True,
    )
    return apps


def bind_live_view(tools: Iterable[Tool]) -> list[Tool]:
    """``tools``, with the run tools naming the live view in ``_meta.ui.resourceUri``."""
    bound = []
    for tool in tools:
        if tool.name in BOUND_TOOLS:
            ui = {"resourceUri": LIVE_VIEW_URI}
            tool = tool.model_copy(update={"meta": {**(tool.meta or {}), "ui": ui}})
        bound.append(tool)
    return bound
