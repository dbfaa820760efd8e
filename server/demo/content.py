"""The demo's web for pattern 2: source pages to research, and three WordPress-style sites.

- ``GET /api/rest_v1/page/summary/{title}`` — a page summary in the shape of Wikipedia's REST
  API (``{title, extract, ...}``), so ``examples/pattern2_content_pipeline.yaml`` reads the demo
  exactly as it reads Wikipedia; the text is the demo's own, for any title;
- ``POST /wp/{site}/wp-json/wp/v2/posts`` — WordPress's REST route for a new post, for sites
  ``site-a``, ``site-b`` and ``site-c``, each behind HTTP Basic auth with an application password
  (``WP_USER`` and ``WP_PASSWORDS``); it answers 201 with the post as WordPress does (``id``,
  ``link``, ``slug``, ``status``, ``title.rendered``). Site B answers 503 to its first post, to
  show a retry. ``GET /wp/{site}/wp-json/wp/v2/posts`` lists what a site received.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

WP_USER = "editor"
# WordPress shows an application password as six groups of four characters; spaces are ignored
WP_PASSWORDS = {
    "site-a": "ab12 cd34 ef56 gh78 ij90 kl12",
    "site-b": "mn34 op56 qr78 st90 uv12 wx34",
    "site-c": "yz56 ab78 cd90 ef12 gh34 ij56",
}
WP_SECRETS = {
    f"WP_{site.upper().replace('-', '_')}_PASSWORD": pw for site, pw in WP_PASSWORDS.items()
}

_TOPICS = (
    "splits a job into parts that run at the same time",
    "orders work by what each step needs from the steps before it",
    "keeps a service within what its callers may ask of it",
    "tries a failed step again after a growing pause",
    "spreads one piece of work over many items and gathers the results",
)


@dataclass
class ContentState:
    """What the WordPress-style sites received, and the failures still to show."""

    posts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failures_left: dict[str, int] = field(default_factory=lambda: {"site-b": 1})


def page_summary(title: str) -> dict[str, Any]:
    """A short summary of ``title`` (``Parallel_computing``), the same text for the same title."""
    name = title.replace("_", " ").strip() or "Untitled"
    pick = int(hashlib.sha256(name.encode()).hexdigest(), 16)
    what = _TOPICS[pick % len(_TOPICS)]
    extract = (
        f"{name} is an idea in computing: it {what}. This summary is demo text served on this "
        f"machine by `orchestrator demo`, in the shape of Wikipedia's page summaries."
    )
    return {"type": "standard", "title": name, "extract": extract, "lang": "en"}


def _user_of(request: Request, site: str) -> str | None:
    """The user a valid ``Authorization: Basic`` header names for ``site``, else None."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    expected = WP_PASSWORDS[site].replace(" ", "")
    return user if user == WP_USER and password.replace(" ", "") == expected else None


def _wp_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "data": {"status": status}}, status)


def content_routes(state: ContentState) -> list[Route]:
    """The routes over ``state``."""

    async def summary(request: Request) -> Response:
        return JSONResponse(page_summary(request.path_params["title"]))

    async def posts(request: Request) -> Response:
        site = request.path_params["site"]
        if site not in WP_PASSWORDS:
            return _wp_error(404, "rest_no_route", f"no site {site}")
        if request.method == "GET":
            return JSONResponse(state.posts.get(site, []))
        if _user_of(request, site) is None:
            return _wp_error(401, "rest_cannot_create", "Sorry, you are not allowed to do that.")
        if state.failures_left.get(site, 0) > 0:
            state.failures_left[site] -= 1
            return _wp_error(503, "unavailable", "temporarily unavailable (the demo's retry)")
        body = await request.json()
        if not isinstance(body, dict) or not body.get("title"):
            return _wp_error(400, "rest_invalid_param", "a post needs a title")
        stored = state.posts.setdefault(site, [])
        post_id = len(stored) + 1
        stored.append(body)
        slug = str(body.get("slug") or f"post-{post_id}")
        return JSONResponse(
            {
                "id": post_id,
                "link": f"{request.base_url}wp/{site}/{slug}/",
                "slug": slug,
                "status": body.get("status", "draft"),
                "title": {"raw": body["title"], "rendered": body["title"]},
            },
            status_code=201,
        )

    return [
        Route("/api/rest_v1/page/summary/{title}", summary),
        Route("/wp/{site}/wp-json/wp/v2/posts", posts, methods=["GET", "POST"]),
    ]
