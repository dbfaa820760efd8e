"""A small HTTP server for the runner tests and the local examples, on 127.0.0.1.

``LocalServer.start()`` serves it from a background thread (its own event loop) on a free port;
tests read what it saw straight from its ``state``. ``python -m tests.local_server [PORT]`` serves
it in the foreground and prints its URL, for running ``examples/pattern2_publish_local.yaml``.

Endpoints (``KEY`` is any name a test picks, so tests never share counters):

- ``/echo`` (any method): ``{method, path, query, headers, body, json}`` of the request
- ``/slow?seconds=S``: answers after S seconds
- ``/flaky/KEY?fails=N&status=503``: fails N times with that status, then ``{key, hits}``
- ``/limited/KEY?times=N&retry_after=S``: 429 with ``Retry-After: S`` N times, then ``{key, hits}``
- ``/pages/body/KEY?page=P&pages=N&size=Z``: ``{items, next}``; ``next`` is the next page's URL
- ``/pages/link/KEY?page=P&pages=N&size=Z``: a list of items, ``Link: <...>; rel="next"``
- ``/count/KEY?delay=S``: holds each request S seconds, counting those in flight
- ``/redirect?to=URL&status=302``: redirects to URL
- ``/status/CODE``: answers with that status and a JSON body
- ``/bytes``: a few bytes of ``image/png``
- ``/big/KEY?mb=M&length=1&gzip=1``: M MiB of filler, streamed (``mb=0``: endless); ``length=1``
  declares it in ``Content-Length``, ``gzip=1`` sends it gzip-compressed (a few KiB on the wire);
  ``state.sent[KEY]`` counts the bytes handed to the connection
- ``/trickle/KEY[/...]?every=S`` (any method): a text body one byte every S seconds, for ever;
  ``state.sent[KEY]`` counts them
- ``/deep?levels=N&pad=P``: a JSON object nested N levels deep (``{"a": {"a": ... 1}}``), then
  P spaces
- ``/large-json?items=N``: a JSON list of N strings of 1,000 characters
- ``/publish/SITE``: records the JSON or form body posted to SITE and answers ``{site, id}``

Every request is recorded in ``state.requests`` (method, host, path, headers, body).
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

PNG_BYTES = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(32))


@dataclass
class ServerState:
    """What the server has seen; written on the server's thread, read by tests."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    hits: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    hit_times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    max_in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    published: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    sent: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    accounts: dict[str, str] = field(default_factory=dict)  # username -> password for /login
    api_token: str = "api-token-from-login"  # what /login hands out and /api/me accepts

    def received(self, path_prefix: str) -> list[dict[str, Any]]:
        return [r for r in list(self.requests) if r["path"].startswith(path_prefix)]


def _int(request: Request, name: str, default: int) -> int:
    return int(request.query_params.get(name, default))


def _float(request: Request, name: str, default: float) -> float:
    return float(request.query_params.get(name, default))


def create_app(state: ServerState) -> Starlette:
    """The Starlette app over ``state``."""

    async def record(request: Request) -> bytes:
        body = await request.body()
        state.requests.append(
            {
                "method": request.method,
                "host": request.url.hostname,
                "path": request.url.path,
                "query": str(request.url.query),
                "headers": dict(request.headers),
                "body": body.decode("utf-8", "replace"),
            }
        )
        return body

    async def echo(request: Request) -> Response:
        body = await record(request)
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        return JSONResponse(
            {
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": dict(request.headers),
                "body": body.decode("utf-8", "replace"),
                "json": parsed,
            }
        )

    async def slow(request: Request) -> Response:
        await record(request)
        seconds = _float(request, "seconds", 0.2)
        await asyncio.sleep(seconds)
        return JSONResponse({"slept": seconds})

    async def flaky(request: Request) -> Response:
        await record(request)
        key = request.path_params["key"]
        state.hits[key] += 1
        state.hit_times[key].append(time.monotonic())
        if state.hits[key] <= _int(request, "fails", 2):
            status = _int(request, "status", 503)
            return JSONResponse({"error": f"failure {state.hits[key]}"}, status_code=status)
        return JSONResponse({"key": key, "hits": state.hits[key]})

    async def limited(request: Request) -> Response:
        await record(request)
        key = request.path_params["key"]
        state.hits[key] += 1
        state.hit_times[key].append(time.monotonic())
        if state.hits[key] <= _int(request, "times", 1):
            retry_after = request.query_params.get("retry_after", "1")
            return JSONResponse(
                {"error": "slow down"}, status_code=429, headers={"Retry-After": retry_after}
            )
        return JSONResponse({"key": key, "hits": state.hits[key]})

    def page_items(request: Request) -> tuple[int, int, list[dict[str, Any]]]:
        page, pages, size = (
            _int(request, "page", 1),
            _int(request, "pages", 3),
            _int(request, "size", 2),
        )
        first = (page - 1) * size
        return page, pages, [{"id": first + n, "page": page} for n in range(size)]

    def next_page_url(request: Request, page: int) -> str:
        return str(request.url.include_query_params(page=page + 1))

    async def pages_in_body(request: Request) -> Response:
        await record(request)
        page, pages, items = page_items(request)
        following = next_page_url(request, page) if page < pages else None
        return JSONResponse({"items": items, "next": following})

    async def pages_in_link(request: Request) -> Response:
        await record(request)
        page, pages, items = page_items(request)
        headers = {}
        if page < pages:
            # a relative link, as many APIs send
            query = request.url.include_query_params(page=page + 1).query
            headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'
        return JSONResponse(items, headers=headers)

    async def count(request: Request) -> Response:
        await record(request)
        key = request.path_params["key"]
        state.hits[key] += 1
        state.hit_times[key].append(time.monotonic())
        state.in_flight[key] += 1
        state.max_in_flight[key] = max(state.max_in_flight[key], state.in_flight[key])
        try:
            await asyncio.sleep(_float(request, "delay", 0.05))
        finally:
            state.in_flight[key] -= 1
        return JSONResponse({"key": key, "n": state.hits[key]})

    async def redirect(request: Request) -> Response:
        await record(request)
        return RedirectResponse(
            request.query_params["to"], status_code=_int(request, "status", 302)
        )

    async def status(request: Request) -> Response:
        await record(request)
        code = int(request.path_params["code"])
        return JSONResponse({"status": code, "message": f"status {code} on purpose"}, code)

    async def raw_bytes(request: Request) -> Response:
        await record(request)
        return Response(PNG_BYTES, media_type="image/png")

    async def big(request: Request) -> Response:
        await record(request)
        key = request.path_params["key"]
        size = int(_float(request, "mb", 0) * 1024 * 1024)
        compressed = request.query_params.get("gzip") == "1"
        chunk = b"a" * 65536

        async def filler() -> AsyncIterator[bytes]:
            squeeze = zlib.compressobj(wbits=31)  # gzip framing
            left = size
            while size == 0 or left > 0:
                piece = chunk if size == 0 else chunk[: min(left, len(chunk))]
                left -= len(piece)
                out = squeeze.compress(piece) if compressed else piece
                state.sent[key] += len(out)
                if out:
                    yield out
                await asyncio.sleep(0)
            if compressed:
                yield squeeze.flush()

        headers = {"content-encoding": "gzip"} if compressed else {}
        if request.query_params.get("length") == "1" and size and not compressed:
            headers["content-length"] = str(size)
        return StreamingResponse(filler(), media_type="text/plain", headers=headers)

    async def trickle(request: Request) -> Response:
        await record(request)
        key, every = request.path_params["key"], _float(request, "every", 0.2)

        async def drops() -> AsyncIterator[bytes]:
            while True:
                state.sent[key] += 1
                yield b"."
                await asyncio.sleep(every)

        return StreamingResponse(drops(), media_type="text/plain")

    async def deep(request: Request) -> Response:
        await record(request)
        levels = _int(request, "levels", 800)
        padding = " " * _int(request, "pad", 0)  # a large body takes another path
        text = '{"a":' * levels + "1" + "}" * levels + padding
        return Response(text, media_type="application/json")

    async def large_json(request: Request) -> Response:
        await record(request)
        items = [f"{n:06d}" + "x" * 994 for n in range(_int(request, "items", 2000))]
        return JSONResponse(items)

    async def publish(request: Request) -> Response:
        body = await record(request)
        site = request.path_params["site"]
        if request.headers.get("content-type", "").startswith("application/json"):
            received: Any = json.loads(body)
        else:
            received = dict(await request.form())
        state.published[site].append(received)
        return JSONResponse({"site": site, "id": len(state.published[site])}, status_code=201)

    async def login(request: Request) -> Response:
        await record(request)
        credentials = await request.json()
        username, password = credentials.get("username"), credentials.get("password")
        if username not in state.accounts or state.accounts[username] != password:
            return JSONResponse({"error": "wrong username or password"}, status_code=401)
        return JSONResponse({"token": state.api_token, "user": username})

    async def me(request: Request) -> Response:
        await record(request)
        if request.headers.get("authorization") != f"Bearer {state.api_token}":
            return JSONResponse({"error": "log in first"}, status_code=401)
        return JSONResponse({"user": "alice", "plan": "pro"})

    any_method = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(
        routes=[
            Route("/echo", echo, methods=any_method),
            Route("/echo/{rest:path}", echo, methods=any_method),
            Route("/slow", slow),
            Route("/flaky/{key}", flaky, methods=any_method),
            Route("/limited/{key}", limited, methods=any_method),
            Route("/pages/body/{key}", pages_in_body),
            Route("/pages/link/{key}", pages_in_link),
            Route("/count/{key}", count, methods=any_method),
            Route("/redirect", redirect, methods=any_method),
            Route("/status/{code:int}", status, methods=any_method),
            Route("/bytes", raw_bytes),
            Route("/big/{key}", big),
            Route("/trickle/{key}/{rest:path}", trickle, methods=any_method),
            Route("/trickle/{key}", trickle, methods=any_method),
            Route("/deep", deep),
            Route("/large-json", large_json),
            Route("/publish/{site}", publish, methods=["POST", "PUT"]),
            Route("/login", login, methods=["POST"]),
            Route("/api/me", me),
        ]
    )


class LocalServer:
    """The app served by uvicorn on 127.0.0.1 (or another loopback address) from a background
    thread."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.state = ServerState()
        self.host = host
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.state),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def url(self, path: str = "", host: str | None = None) -> str:
        """``http://127.0.0.1:PORT`` + ``path``; ``host="localhost"`` names the same server
        differently (a second host, for the tests of host-bound secrets)."""
        return f"http://{host or self.host}:{self.port}{path}"

    def start(self) -> LocalServer:
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the local test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._socket.close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str]) -> None:
    server = LocalServer(int(argv[0]) if argv else 8765).start()
    print(server.url(), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
