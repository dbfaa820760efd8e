"""The README's pictures of the live view, taken from a realistic run (run by scripts/screenshots).

It starts a real ``orchestrator serve --http`` on a free loopback port with a temporary
ORCHESTRATOR_HOME and a token, a local stand-in model for the ``llm`` steps (its key in the
server's vault), and submits a weekly content run through MCP (the SDK's client over HTTP):
sources collected, a summary of each by the model, analytics fetched on a second attempt after a
429, a CMS sync that fails with a 503 and the sitemap step it leaves skipped, an approval before
publishing, the posts published and announced. It runs offline in a few seconds.

In Chromium: ``/ui`` while the approval waits (``live-view-waiting.png``), Approve clicked on
that page, the finished run (``live-view.png``); then the same run as the MCP App inline in a
host page (``live-view-app.png``, through ``server/ui/app_host.py``, as the tests render it).
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from playwright.async_api import Browser, Page, async_playwright, expect
from playwright.async_api import Error as PlaywrightError

from multi_task_orchestrator.engine import BrowserNotFound, locate_browser
from multi_task_orchestrator.server.standin_model import StandinModel
from multi_task_orchestrator.server.ui.app_host import AppHost, dumped

REPO = Path(__file__).resolve().parent.parent
WIDTH = 1200
MODEL_KEY = "sk-standin-" + secrets.token_hex(8)
SOURCES = [
    {"title": "Release notes: version 2.4", "url": "https://example.com/changelog/2-4"},
    {"title": "Customer story: Northwind Logistics", "url": "https://example.com/stories/nw"},
    {"title": "Guide: retries with backoff", "url": "https://example.com/guides/retries"},
]


def document(model_url: str) -> dict[str, Any]:
    """A week of blog work: what a content team would hand the orchestrator."""
    model = {
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "base_url": model_url,
        "api_key": "${vault.LLM_API_KEY}",
    }
    return {
        "name": "Weekly content run",
        "max_concurrent": 4,
        "budget": {"tokens": 50_000, "cost_usd": 0.50},
        "tasks": [
            {
                "id": "collect_sources",
                "name": "Collect this week's sources",
                "type": "delay",
                "config": {"seconds": 0.6, "value": SOURCES},
            },
            {
                "id": "summarise",
                "name": "Summarise each source",
                "type": "llm",
                "dependencies": ["collect_sources"],
                "for_each": "${collect_sources.output}",
                "config": {
                    **model,
                    "system": "You write short, accurate summaries for a company blog.",
                    "prompt": "Summarise in three sentences: ${item.title} (${item.url})",
                    "max_tokens": 400,
                },
            },
            {
                "id": "fetch_analytics",
                "name": "Fetch last week's analytics",
                "type": "delay",
                "retry": {"max_attempts": 3, "initial": "0.6s"},
                "config": {
                    "seconds": 0.5,
                    "fail": "http_429",
                    "fail_attempts": 1,
                    "message": "the analytics API answered 429 Too Many Requests",
                    "value": {"visits": 18_432, "top_post": "Guide: retries with backoff"},
                },
            },
            {
                "id": "draft_posts",
                "name": "Draft three posts",
                "type": "llm",
                "dependencies": ["summarise", "fetch_analytics"],
                "config": {
                    **model,
                    "system": "You write clear blog posts for software engineers.",
                    "prompt": "Write three short blog posts, one per summary, leading with the "
                    "most read topic (${fetch_analytics.output.top_post}):\n"
                    "${summarise.output[].text}",
                    "max_tokens": 1500,
                },
            },
            {
                "id": "sync_cms_tags",
                "name": "Sync the CMS tag index",
                "type": "delay",
                "retry": {"max_attempts": 2, "initial": "0.4s"},
                "config": {
                    "seconds": 0.4,
                    "fail": "http_5xx",
                    "message": "the CMS answered 503 Service Unavailable",
                },
            },
            {
                "id": "rebuild_sitemap",
                "name": "Rebuild the sitemap",
                "type": "delay",
                "dependencies": ["sync_cms_tags"],
                "config": {"seconds": 0.3},
            },
            {
                "id": "review",
                "name": "Editor review",
                "type": "approval",
                "dependencies": ["draft_posts"],
                "config": {"message": "Publish 3 posts to the blog?"},
            },
            {
                "id": "publish",
                "name": "Publish each post",
                "type": "delay",
                "dependencies": ["review"],
                "for_each": "${collect_sources.output}",
                "config": {"seconds": 0.4, "value": {"published": "${item.title}"}},
            },
            {
                "id": "announce",
                "name": "Announce in #content",
                "type": "delay",
                "dependencies": ["publish"],
                "config": {"seconds": 0.2, "value": "3 posts announced in #content"},
            },
        ],
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def orchestrator(*args: str) -> list[str]:
    return [sys.executable, "-m", "multi_task_orchestrator.server.cli", *args]


def child_env(home: Path, **settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORCHESTRATOR_")}
    env.update(ORCHESTRATOR_HOME=str(home), PYTHONIOENCODING="utf-8", **settings)
    return env


def start_server(home: Path, port: int, token: str, log: Path) -> subprocess.Popen[bytes]:
    """``orchestrator serve --http`` on 127.0.0.1:port; returns once the port answers."""
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            orchestrator("serve", "--http", "--host", "127.0.0.1", "--port", str(port)),
            cwd=REPO,
            env=child_env(home, ORCHESTRATOR_HTTP_TOKEN=token),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                sys.exit(f"the server did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)


class ToolRefused(Exception):
    """A tool call the server answered with an error."""


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> Any:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise ToolRefused(f"{tool} failed: {result.content[0].text}")  # type: ignore[union-attr]
    return result


async def settled(page: Page) -> None:
    """Wait until the host has sized the app's frame to the app (its size-changed notices
    follow each change of the page), then make the window as tall as the host page: a
    full-page screenshot of a frame still being resized would show it half painted."""
    height = -1
    while (now := await page.evaluate("document.getElementById('view').offsetHeight")) != height:
        height = now
        await page.wait_for_timeout(500)
    total = await page.evaluate("document.documentElement.scrollHeight")
    await page.set_viewport_size({"width": WIDTH, "height": total})
    await page.wait_for_timeout(300)


async def shoot(page: Page, path: Path) -> None:
    await page.screenshot(path=path, full_page=True)
    print(f"wrote {path}")


async def take(base: str, token: str, model_url: str, out: Path, browser: Browser) -> None:
    """Submit the run and take the three pictures."""
    authorized = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=60)
    )
    async with (
        authorized,
        Client(streamable_http_client(f"{base}/mcp", http_client=authorized)) as client,
    ):
        arguments = {"spec": document(model_url)}
        submitted = await call(client, "submit_orchestration", arguments)
        run_id = submitted.structured_content["id"]

        page = await browser.new_page(viewport={"width": WIDTH, "height": 900})
        await page.goto(f"{base}/ui/?token={token}")  # once: a cookie carries on
        await page.goto(f"{base}/ui/runs/{run_id}")
        review = page.locator('.approval[data-approval="review"]')
        await expect(review).to_be_visible()
        await expect(page.locator('#tasks tr[data-task="rebuild_sitemap"]')).to_contain_text(
            "skipped"
        )
        await shoot(page, out / "live-view-waiting.png")

        await review.locator("input.note").fill("Read all three, good to go")
        await review.locator('button[data-action="approve"]').click()
        await expect(page.locator("h1 .badge")).to_have_attribute("data-state", "failed")
        await page.locator('#tasks tr[data-task="rebuild_sitemap"]').click()
        await expect(page.locator("#task-chain")).to_contain_text("sync_cms_tags")
        await page.locator("#log-box summary").click()
        await expect(page.locator("#log")).to_contain_text("[announce] succeeded")
        await shoot(page, out / "live-view.png")

        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        uri = (tools["submit_orchestration"].meta or {})["ui"]["resourceUri"]
        html = (await client.read_resource(uri)).contents[0].text  # type: ignore[union-attr]
        host = AppHost(await browser.new_page(viewport={"width": WIDTH, "height": 900}), client)
        await host.open(html, arguments, dumped(submitted))
        app = host.page.frame_locator("#view")
        await expect(app.locator("h1 .badge")).to_have_attribute("data-state", "failed")
        await expect(app.locator("#usage")).to_contain_text("budget")
        await app.locator('#tasks tr[data-task="sync_cms_tags"]').click()
        await expect(app.locator("#task-error")).to_contain_text("503")
        await settled(host.page)
        await shoot(host.page, out / "live-view-app.png")


async def main_async(out: Path) -> None:
    chromium = await locate_browser(None)
    with tempfile.TemporaryDirectory(prefix="orchestrator-screenshots-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        with StandinModel(keys=frozenset({MODEL_KEY})) as model:
            stored = subprocess.run(
                orchestrator("vault", "set", "LLM_API_KEY", "--hosts", "127.0.0.1"),
                input=MODEL_KEY,
                text=True,
                cwd=REPO,
                env=child_env(home),
                capture_output=True,
            )
            if stored.returncode != 0:
                sys.exit(f"orchestrator vault set failed:\n{stored.stderr}")
            port, token = free_port(), secrets.token_urlsafe(16)
            server = start_server(home, port, token, Path(tmp) / "server.stderr")
            try:
                async with async_playwright() as playwright:
                    browser = await playwright.chromium.launch(executable_path=str(chromium.path))
                    try:
                        with anyio.fail_after(120):
                            await take(f"http://127.0.0.1:{port}", token, model.url, out, browser)
                    finally:
                        await browser.close()
            finally:
                server.terminate()
                try:
                    server.wait(10)
                except subprocess.TimeoutExpired:
                    server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/screenshots", description=__doc__)
    parser.add_argument(
        "--out", type=Path, default=REPO / "docs", help="the folder to write to (docs/)"
    )
    out: Path = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=30_000)
    try:
        anyio.run(main_async, out)
    except Exception as error:  # the MCP client's task group wraps what went wrong in a group
        found: BaseException = error
        while isinstance(found, BaseExceptionGroup) and len(found.exceptions) == 1:
            found = found.exceptions[0]
        if isinstance(found, BrowserNotFound | ToolRefused):
            sys.exit(f"screenshots: {found}")
        if isinstance(found, AssertionError | PlaywrightError | TimeoutError):
            first = "\n".join(str(found).splitlines()[:6])
            sys.exit(
                "screenshots: the live view did not show what scripts/screenshots.py waits for "
                f"(has the page changed?):\n{first}"
            )
        raise


if __name__ == "__main__":
    main()
