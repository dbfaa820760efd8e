"""The live view as an MCP App, rendered by a host written the way the Apps spec says.

The server is the real one (``create_server``) behind the SDK's client. The host is a page in
Chromium (``server/ui/app_host.py``, shared with ``scripts/screenshots``): it reads the ``ui://``
resource the submit tool names in ``_meta.ui.resourceUri``, puts it in a sandboxed iframe
(scripts only, an opaque origin, the spec's restrictive default CSP: no network) and speaks the
host side of the bridge — JSON-RPC over ``postMessage`` — passing the app's ``tools/call`` and
``resources/read`` on to the server through the SDK client.

The app must show the submitted run, refresh it by calling ``get_status`` through the host,
release an approval with its button (``approve_task``), and show the failure's chain — with
every hostile string as text. The screenshot goes to the test's temporary folder (the test
prints the path); the README's comes from ``scripts/screenshots``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from cli_process import home_with_secrets
from mcp import Client
from playwright.async_api import async_playwright, expect

from multi_task_orchestrator.engine.runners.browser import discovery
from multi_task_orchestrator.server.app import create_server
from multi_task_orchestrator.server.settings import Settings
from multi_task_orchestrator.server.standin_model import StandinModel
from multi_task_orchestrator.server.ui.app_host import AppHost, dumped

expect.set_options(timeout=20_000)
APP_MIME = "text/html;profile=mcp-app"
XSS = '<img src=x onerror="window.__xss=1">'
KEY = "sk-live-view-canary-7f3a"


def document(model: StandinModel) -> dict[str, Any]:
    """A run with everything the view draws: a model step (usage, a budget), a failure and
    its dependent, an approval, hostile text everywhere."""
    summarise = {
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "base_url": model.url,
        "api_key": "${vault.LLM_KEY}",
        "prompt": "Summarise ${fetch.output}",
    }
    return {
        "name": f"App run {XSS}",
        "budget": {"tokens": 100_000},
        "tasks": [
            *TASKS,
            {"id": "summarise", "type": "llm", "dependencies": ["fetch"], "config": summarise},
        ],
    }


TASKS = [
    {"id": "fetch", "type": "delay", "config": {"seconds": 0.2, "value": XSS}},
    {"id": "broken", "type": "delay", "config": {"fail": "timeout", "message": XSS}},
    {"id": "after", "type": "delay", "dependencies": ["broken"], "config": {}},
    {
        "id": "gate",
        "type": "approval",
        "dependencies": ["fetch"],
        "config": {"message": f"Ship it? {XSS}"},
    },
]


@pytest.fixture
def model() -> Iterator[StandinModel]:
    with StandinModel(keys=frozenset({KEY})) as running:
        yield running


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    home = home_with_secrets(tmp_path / "home", LLM_KEY=KEY)
    settings = Settings(home=home, shutdown_grace=0)
    async with Client(create_server(settings)) as connected:
        yield connected


@pytest.mark.anyio
async def test_the_app_follows_a_run_through_the_host(
    client: Client, model: StandinModel, tmp_path: Path
) -> None:
    capabilities = client.server_capabilities
    assert capabilities.extensions is not None
    assert "io.modelcontextprotocol/ui" in capabilities.extensions
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    bound = {name for name, tool in tools.items() if (tool.meta or {}).get("ui")}
    assert bound == {"submit_orchestration", "get_status", "wait_for_orchestration"}
    uri = tools["submit_orchestration"].meta["ui"]["resourceUri"]  # type: ignore[index]
    resource = (await client.read_resource(uri)).contents[0]
    assert resource.mime_type == APP_MIME
    html = resource.text  # type: ignore[union-attr]
    assert "http://" not in html and "https://" not in html  # nothing from elsewhere

    arguments = {"spec": document(model)}
    submitted = await client.call_tool("submit_orchestration", arguments)
    assert not submitted.is_error, submitted.content
    run_id = submitted.structured_content["id"]  # type: ignore[index]

    chromium = discovery.find_browser(None, discovery.default_candidates(None))
    with anyio.fail_after(60):
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(chromium.path))
            page = await browser.new_page(viewport={"width": 1100, "height": 1000})
            host = AppHost(page, client)
            await host.open(html, arguments, dumped(submitted))
            app = page.frame_locator("#view")
            await expect(app.locator("#run-id")).to_contain_text(run_id)
            gate = app.locator('.approval[data-approval="gate"]')
            await expect(gate.locator(".msg")).to_have_text(f"Ship it? {XSS}")
            await expect(app.locator('#timeline .tl-row[data-row="fetch"]')).to_be_visible()
            await gate.locator('button[data-action="approve"]').click()
            await expect(app.locator("h1 .badge")).to_have_attribute("data-state", "failed")
            await app.locator('#tasks tr[data-task="after"]').click()
            await expect(app.locator("#task-chain")).to_have_text("Chain: after ← broken")
            await app.locator('#tasks tr[data-task="fetch"]').click()
            await expect(app.locator("#task-output")).to_have_text(XSS)
            await expect(app.locator("h1")).to_contain_text(f"App run {XSS}")
            await expect(app.locator("#usage")).to_contain_text("budget")
            await expect(app.locator('#tasks tr[data-task="summarise"] .badge')).to_have_text(
                "succeeded"
            )
            shown = await app.locator("body").inner_text()
            await page.screenshot(path=tmp_path / "live-view-app.png", full_page=True)
            print(f"MCP App screenshot: {tmp_path / 'live-view-app.png'}")
            frame = page.frames[1]
            xss = await frame.evaluate("window.__xss")
            seen = await page.evaluate("window.__seen")

            # opened without a run (a result that names none): the runs list, then a run
            other = AppHost(await browser.new_page(), client)
            await other.open(html, {}, {"content": []})
            listing = other.page.frame_locator("#view")
            await listing.locator(f'#runs tr[data-run="{run_id}"]').click()
            await expect(listing.locator("#run-id")).to_contain_text(run_id)
            await browser.close()

    assert xss is None
    assert KEY not in shown
    assert seen[:2] == ["ui/initialize", "ui/notifications/initialized"]
    calls = host.calls + other.calls
    assert "get_status" in calls  # the refresh goes through the host
    assert f"read orchestration://{run_id}/live" in calls
    assert "approve_task" in calls and "get_results" in calls
    assert "list_orchestrations" in calls and "list_schedules" in calls
    status = await client.call_tool("get_status", {"id": run_id})
    gate_row = next(t for t in status.structured_content["tasks"] if t["id"] == "gate")  # type: ignore[index]
    assert gate_row["approval"]["decided_by"] == "mcp"
    # a client without Apps reads the same run as text
    text = json.loads(status.content[0].text)  # type: ignore[union-attr]
    assert "█" in text["display"] and "broken" in text["display"]
