"""A small local web site for the HTTP and browser workloads, served in its own process.

``/item/N`` answers a small JSON object; ``/page/N`` a small HTML page with a list of
``.item`` elements; ``/large/MB`` a JSON list of strings of about MB megabytes (W8's large
output). ``serve()`` starts ``python -m bench.site PORT`` and yields its base URL, so
the server's work does not share the event loop (or the GIL) with what is measured.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

ITEMS_PER_PAGE = 20


async def item(request: Request) -> JSONResponse:
    number = int(request.path_params["number"])
    return JSONResponse({"id": number, "name": f"item {number}", "tags": ["a", "b"]})


async def page(request: Request) -> HTMLResponse:
    number = int(request.path_params["number"])
    rows = "".join(f'<li class="item">page {number} item {i}</li>' for i in range(ITEMS_PER_PAGE))
    return HTMLResponse(f"<html><head><title>page {number}</title></head><body><ul>{rows}</ul>")


async def large(request: Request) -> Response:
    megabytes = int(request.path_params["megabytes"])
    entry = b'"' + b"x" * 998 + b'"'  # 1,000 bytes with its quotes
    body = b"[" + b",".join([entry] * (megabytes * 1000)) + b"]"
    return Response(body, media_type="application/json")


app = Starlette(
    routes=[
        Route("/item/{number:int}", item),
        Route("/page/{number:int}", page),
        Route("/large/{megabytes:int}", large),
    ]
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve() -> Iterator[str]:
    """Run the site in a subprocess; yield ``http://127.0.0.1:PORT``."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.site", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{base}/item/0", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the benchmark site did not start") from None
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
