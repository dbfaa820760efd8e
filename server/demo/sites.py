"""The demo's local web: three news sites, a content API and three publishing endpoints.

Served on 127.0.0.1 by ``orchestrator demo`` so the seed's patterns run with no network:

- ``/site-a/`` — a plain article list (the seed's ``.article-list``);
- ``/site-b/?page=N`` — a feed in three pages whose posts appear 300 ms after load (script);
- ``/site-c/`` — members-only stories behind ``/site-c/login`` (a session cookie);
- ``/content/{step}`` — research, write, edit and optimize steps of a content pipeline;
- ``/publish/{site}`` — three "WordPress" sites; site-b fails its first request (503) to show a
  retry. ``GET /publish`` lists what was published;
- pattern 2's source pages and three WordPress-style REST sites (``server.demo.content``);
- pattern 3's OAuth2 token endpoint, social and profile APIs and a notification receiver
  (``server.demo.accounts``).
"""

from __future__ import annotations

import asyncio
import html
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from multi_task_orchestrator.server.demo.accounts import AccountsState, account_routes
from multi_task_orchestrator.server.demo.content import ContentState, content_routes
from multi_task_orchestrator.server.loopback import LoopbackServer

DEMO_USER = "demo"
DEMO_PASSWORD = "orchestrate-me"

SITE_A = [
    ("Parallel beats serial for I/O-bound work", 92),
    ("Five rate-limit patterns for public APIs", 81),
    ("Why every pipeline needs a retry budget", 77),
    ("Fan-out, fan-in: the shape of most batch jobs", 64),
]
SITE_B = [
    [("DAGs in plain YAML", 88), ("Backoff with jitter, explained", 73)],
    [("Browser pools and why pages should be reused", 95), ("Idempotency keys", 58)],
    [("What at-least-once really means", 69)],
]
SITE_C = [
    ("Members: the orchestration playbook", 99),
    ("Members: secrets that never leave the vault", 85),
]


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _articles(items: list[tuple[str, int]], css: str) -> str:
    rows = "".join(
        f"<li class='{css}'><h2>{html.escape(t)}</h2><span class='score'>{s}</span></li>"
        for t, s in items
    )
    return f"<ul class='article-list'>{rows}</ul>"


@dataclass
class DemoState:
    sessions: set[str] = field(default_factory=set)
    published: dict[str, list[Any]] = field(default_factory=dict)
    failures_left: dict[str, int] = field(default_factory=lambda: {"site-b": 1})
    content: ContentState = field(default_factory=ContentState)
    accounts: AccountsState = field(default_factory=AccountsState)

    def published_count(self) -> int:
        """Posts received, by the plain publishing endpoints and the WordPress-style sites."""
        sites = [*self.published.values(), *self.content.posts.values()]
        return sum(len(posts) for posts in sites)


def create_app(state: DemoState) -> Starlette:
    async def site_a(request: Request) -> Response:
        return _page("Site A — Engineering notes", _articles(SITE_A, "article"))

    async def site_b(request: Request) -> Response:
        page = max(1, min(len(SITE_B), int(request.query_params.get("page", "1"))))
        posts = "".join(
            f"<div class='post'><h2>{html.escape(t)}</h2><a href='/site-b/post/{page}-{i}'>read</a>"
            f" <span class='score'>{s}</span></div>"
            for i, (t, s) in enumerate(SITE_B[page - 1])
        )
        after = f"<a class='next' href='/site-b/?page={page + 1}'>next</a>" if page < 3 else ""
        # the feed (.posts and its .post items) is rendered by a script 300 ms after load, as
        # on many real feeds; before that the page has only an empty placeholder
        feed = f"<div class='posts'>{posts}</div>"
        script = (
            "<div id='feed'></div><script>setTimeout(function(){"
            f"document.getElementById('feed').innerHTML = {json.dumps(feed)};"
            "}, 300);</script>"
        )
        return _page(f"Site B — Feed, page {page}", script + after)

    async def site_c(request: Request) -> Response:
        if request.cookies.get("demo_session") not in state.sessions:
            return RedirectResponse("/site-c/login", status_code=303)
        return _page(
            "Site C — Members",
            "<p class='members'>Signed in as demo</p>" + _articles(SITE_C, "story"),
        )

    async def site_c_login(request: Request) -> Response:
        if request.method == "POST":
            sent = await request.form()
            if sent.get("username") == DEMO_USER and sent.get("password") == DEMO_PASSWORD:
                session = secrets.token_hex(8)
                state.sessions.add(session)
                response = RedirectResponse("/site-c/", status_code=303)
                response.set_cookie("demo_session", session, httponly=True)
                return response
            return _page("Site C — Sign in", "<p class='error'>Wrong username or password</p>")
        form = (
            "<form method='post'><input id='username' name='username'>"
            "<input id='password' name='password' type='password'>"
            "<button id='sign-in' type='submit'>Sign in</button></form>"
        )
        return _page("Site C — Sign in", form)

    async def content(request: Request) -> Response:
        step = request.path_params["step"]
        body = await request.json()
        topic = body.get("topic", "orchestration")
        draft = body.get("draft", {})
        match step:
            case "research":
                result = {"topic": topic, "sources": body.get("sources", [])[:5]}
            case "write":
                result = {"title": f"What we learned about {topic}", "words": 900, **draft}
            case "edit":
                result = {**draft, "words": 850, "edited": True}
            case "optimize":
                result = {**draft, "title": f"{draft.get('title', topic)} (a field guide)"}
            case _:
                return JSONResponse({"error": f"no step {step}"}, status_code=404)
        await asyncio.sleep(0.2)  # a little work, so the progress display has something to show
        return JSONResponse(result)

    async def publish(request: Request) -> Response:
        site = request.path_params["site"]
        if state.failures_left.get(site, 0) > 0:
            state.failures_left[site] -= 1
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
        posts = state.published.setdefault(site, [])
        posts.append(await request.json())
        return JSONResponse(
            {"site": site, "id": len(posts), "status": "published"}, status_code=201
        )

    async def published(request: Request) -> Response:
        return JSONResponse(state.published)

    return Starlette(
        routes=[
            Route("/site-a/", site_a),
            Route("/site-b/", site_b),
            Route("/site-c/", site_c),
            Route("/site-c/login", site_c_login, methods=["GET", "POST"]),
            Route("/content/{step}", content, methods=["POST"]),
            Route("/publish/{site}", publish, methods=["POST"]),
            Route("/publish", published),
            *content_routes(state.content),
            *account_routes(state.accounts),
        ]
    )


class DemoSites(LoopbackServer):
    """The sites served by uvicorn inside the running event loop, on a free loopback port."""

    def __init__(self) -> None:
        self.state = DemoState()
        super().__init__(create_app(self.state), name="the demo sites")
