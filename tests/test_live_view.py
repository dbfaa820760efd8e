"""The live view at ``/ui`` of a real ``orchestrator serve --http`` process, in Chromium.

One server (with a bearer token) and one browser for the module. The story test submits a run
through MCP (the SDK's client over HTTP) and follows it on the page as a user does: the token
once in the address, the runs list, the run page updating to its end, an approval approved
from the page, a failed task's chain, and task ids, names, messages and outputs that try to
inject markup shown as plain text. The other tests knock on the door with plain HTTP: no token,
a forged cookie, a cross-site POST, a foreign Host, an artifact that is a web page.

The story's screenshots go to the test's temporary folder (the test prints the path); the
README's come from ``scripts/screenshots``, which runs a realistic document instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from cli_process import cli
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from playwright.async_api import Browser, Page, async_playwright, expect
from test_mcp_http import HttpServer, free_port, start_server

from multi_task_orchestrator.engine.runners.browser import discovery

TOKEN = "view-s3cret"
expect.set_options(timeout=20_000)  # a page updates about once a second; machines are slow
XSS = '<img src=x onerror="window.__xss=1">'
STORY = {
    "name": "Nightly report",
    "tasks": [
        {"id": "fetch", "type": "delay", "config": {"seconds": 0.3, "value": ["a", "b"]}},
        {
            "id": "each",
            "type": "delay",
            "dependencies": ["fetch"],
            "for_each": "${fetch.output}",
            "config": {"seconds": 0.1, "value": "item ${item}"},
        },
        {
            "id": "flaky",
            "type": "delay",
            "retry": {"max_attempts": 2, "initial": "0.05s"},
            "config": {"seconds": 0.05, "fail_attempts": 1, "value": "second try"},
        },
        {
            "id": "broken",
            "name": "Broken <script>window.__xss=1</script>",
            "type": "delay",
            "config": {"seconds": 0.1, "fail": "network", "message": f"upstream {XSS} down"},
        },
        {
            "id": "after_broken",
            "type": "delay",
            "dependencies": ["broken"],
            "config": {"value": 1},
        },
        {
            "id": "gate",
            "type": "approval",
            "dependencies": ["fetch"],
            "config": {"message": f"Publish <b>now</b>? {XSS}"},
        },
        {"id": "veto", "type": "approval", "config": {"message": "Delete the old pages?"}},
        {
            "id": "publish",
            "type": "delay",
            "dependencies": ["gate", "each"],
            "config": {"value": XSS},
        },
    ],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    running = start_server(tmp_path_factory.mktemp("live-view"), ORCHESTRATOR_HTTP_TOKEN=TOKEN)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    chromium = discovery.find_browser(None, discovery.default_candidates(None))
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium.path))
        try:
            yield launched
        finally:
            await launched.close()


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> Any:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content


def base(server: HttpServer) -> str:
    return f"http://127.0.0.1:{server.port}"


@pytest.mark.anyio
async def test_a_run_followed_on_the_page(
    server: HttpServer, browser: Browser, tmp_path: Path
) -> None:
    authorized = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=httpx2.Timeout(30, read=60)
    )
    page: Page = await browser.new_page(viewport={"width": 1200, "height": 1000})
    page.set_default_timeout(20_000)
    with anyio.fail_after(60):
        async with (
            authorized,
            Client(streamable_http_client(server.url, http_client=authorized)) as client,
        ):
            # without the token the page is refused; with it once, a cookie carries on
            refused = await page.goto(base(server) + "/ui/")
            assert refused is not None and refused.status == 401
            opened = await page.goto(base(server) + f"/ui/?token={TOKEN}")
            assert opened is not None and opened.status == 200
            assert page.url == base(server) + "/ui/"  # the token left the address bar
            cookies = await page.context.cookies()
            assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [
                ("orchestrator_ui", True, "Strict")
            ]
            assert TOKEN not in cookies[0]["value"]

            nightly = {"spec": {"tasks": [{"id": "a", "type": "delay"}]}, "cron": "0 3 * * *"}
            nightly["name"] = f"Nightly {XSS}"
            await call(client, "schedule_orchestration", nightly)
            run_id = (await call(client, "submit_orchestration", {"spec": STORY}))["id"]
            row = page.locator(f'#runs tr[data-run="{run_id}"]')
            await expect(row).to_be_visible()
            await expect(page.locator("#schedules tbody tr")).to_contain_text(f"Nightly {XSS}")
            await row.locator("a").click()
            await page.wait_for_url(f"**/ui/runs/{run_id}")

            # the approval waits on the page, with its message as text
            box = page.locator('.approval[data-approval="gate"]')
            await expect(box).to_be_visible()
            await expect(box.locator(".msg")).to_have_text(f"Publish <b>now</b>? {XSS}")
            await expect(page.locator('#timeline .tl-row[data-row="fetch"]')).to_be_visible()
            await page.screenshot(path=tmp_path / "live-view-waiting.png", full_page=True)
            await box.locator("input.note").fill("looks right")
            await box.locator('button[data-action="approve"]').click()
            veto = page.locator('.approval[data-approval="veto"]')
            await veto.locator('button[data-action="reject"]').click()

            final = page.locator("h1 .badge")
            await expect(final).to_have_attribute("data-state", "failed")
            await expect(page.locator("#counts")).to_contain_text("10/10 done")
            fan_out = page.locator('#tasks tr[data-task="each"] td.num').first
            await expect(fan_out).to_have_text("2 items")  # its items ran, not the fan-out
            # the failed task's dependent: its chain leads to the cause
            await page.locator('#tasks tr[data-task="after_broken"]').click()
            await expect(page.locator("#task-chain")).to_have_text("Chain: after_broken ← broken")
            await page.locator('#tasks tr[data-task="broken"]').click()
            await expect(page.locator("#task-error")).to_contain_text(f"upstream {XSS} down")
            await page.locator('#tasks tr[data-task="publish"]').click()
            await expect(page.locator("#task-output")).to_have_text(XSS)
            await expect(page.locator('#failures li[data-failure="broken"]')).to_be_visible()
            await expect(page.locator('#failures li[data-failure="veto"]')).to_contain_text(
                "[rejected]"
            )
            await expect(page.locator('#tasks tr[data-task="flaky"]')).to_contain_text("2/2")
            await page.locator("#log-box summary").click()
            await expect(page.locator("#log")).to_contain_text("gate")
            shot = tmp_path / "live-view.png"
            await page.screenshot(path=shot, full_page=True)
            print(f"live view screenshot: {shot}")

            status = await call(client, "get_status", {"id": run_id})

    broken = await page.locator('#tasks tr[data-task="broken"]').inner_text()
    assert "Broken <script>window.__xss=1</script>" in broken  # shown, not run
    assert await page.evaluate("window.__xss") is None
    assert await page.locator("img, script:not([nonce])").count() == 1  # the config block only
    gate = next(task for task in status["tasks"] if task["id"] == "gate")
    assert gate["state"] == "succeeded"
    assert (gate["approval"]["decided_by"], gate["approval"]["note"]) == ("web", "looks right")
    await page.goto(base(server) + "/ui/runs/orch-nope")
    await expect(page.locator("#run-error")).to_contain_text(
        "no orchestration has the id 'orch-nope'"
    )
    await page.close()


def test_without_the_token_nothing_is_shown(server: HttpServer) -> None:
    for path in ("/ui/", "/ui/runs/x", "/ui/api/runs", "/ui/api/runs/x/log"):
        answer = httpx.get(base(server) + path, timeout=10)
        assert answer.status_code == 401, path
        assert "token" in answer.text
    forged = httpx.get(
        base(server) + "/ui/api/runs", cookies={"orchestrator_ui": TOKEN}, timeout=10
    )
    assert forged.status_code == 401  # the cookie is not the token
    wrong = httpx.get(base(server) + "/ui/?token=nope", timeout=10, follow_redirects=False)
    assert wrong.status_code == 401
    assert "set-cookie" not in wrong.headers
    # a wrong token that is not ASCII is just as wrong, not an internal error
    for query in ("token=%C3%A9", "token=%FF"):
        answer = httpx.get(base(server) + "/ui/?" + query, timeout=10, follow_redirects=False)
        assert answer.status_code == 401, query
    accented = [("authorization", "Bearer \u00e9"), ("cookie", "orchestrator_ui=\u00e9")]
    for name, value in accented:
        answer = httpx.get(
            base(server) + "/ui/api/runs", headers={name: value.encode("latin-1")}, timeout=10
        )
        assert answer.status_code == 401, name
    bearer = {"authorization": f"Bearer {TOKEN}"}
    state = httpx.get(base(server) + "/ui/api/runs?status=" + "x" * 5000, headers=bearer)
    assert state.status_code == 400 and len(state.text) < 300, state.text
    assert "unknown state 'xxx" in state.json()["error"]
    # and the cookie opens /ui only, never the MCP endpoint
    session = httpx.get(base(server) + f"/ui/?token={TOKEN}", timeout=10).cookies
    assert session.get("orchestrator_ui")
    mcp = httpx.post(server.url, cookies=session, json={}, timeout=10)
    assert mcp.status_code == 401
    assert TOKEN not in server.log() + server.stderr()  # not even the address that carried it


def test_changes_come_only_from_the_page_itself(server: HttpServer) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    url = base(server) + "/ui/api/runs/none/tasks/gate/approve"
    own = base(server)
    cases = {
        "no origin": {**auth, "Content-Type": "application/json"},
        "other site": {**auth, "Content-Type": "application/json", "Origin": "http://evil.test"},
        "other port": {
            **auth,
            "Content-Type": "application/json",
            "Origin": f"http://127.0.0.1:{server.port + 1}",
        },
        "a form": {**auth, "Content-Type": "text/plain", "Origin": own},
        "cross-site fetch": {
            **auth,
            "Content-Type": "application/json",
            "Origin": own,
            "Sec-Fetch-Site": "cross-site",
        },
    }
    for case, headers in cases.items():
        answer = httpx.post(url, headers=headers, content=b"{}", timeout=10)
        assert answer.status_code in (400, 403), case
    same = httpx.post(
        url,
        headers={**auth, "Content-Type": "application/json", "Origin": own},
        content=b'{"note": "x"}',
        timeout=10,
    )
    assert same.status_code == 404  # through the door: the run does not exist
    assert "no orchestration" in same.json()["error"]
    extra = httpx.post(
        url,
        headers={**auth, "Content-Type": "application/json", "Origin": own},
        content=b'{"notes": "x"}',
        timeout=10,
    )
    assert extra.status_code == 400 and "notes" in extra.json()["error"]
    rebound = httpx.get(
        base(server) + "/ui/api/runs", headers={**auth, "Host": "evil.test"}, timeout=10
    )
    assert rebound.status_code == 421


@pytest.mark.anyio
async def test_a_page_a_task_wrote_is_downloaded_not_opened(server: HttpServer) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    authorized = httpx2.AsyncClient(headers=auth, timeout=httpx2.Timeout(30, read=60))
    quick = {"tasks": [{"id": "a", "type": "delay", "config": {"value": 1}}]}
    with anyio.fail_after(30):
        async with (
            authorized,
            Client(streamable_http_client(server.url, http_client=authorized)) as client,
        ):
            run_id = (await call(client, "submit_orchestration", {"spec": quick}))["id"]
            await call(client, "wait_for_orchestration", {"id": run_id, "timeout_seconds": 20})
    folder = next(path for path in server.home.rglob(run_id) if path.is_dir()) / "artifacts"
    folder.mkdir(exist_ok=True)
    (folder / "evil.html").write_text(f"<html>{XSS}</html>")
    (folder / "chart.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    files = f"{base(server)}/ui/api/runs/{run_id}/artifacts"
    page = httpx.get(f"{files}/evil.html", headers=auth)
    assert page.status_code == 200
    assert page.headers["content-type"] == "application/octet-stream"
    assert page.headers["content-disposition"].startswith("attachment")
    assert page.headers["content-security-policy"] == "sandbox"
    image = httpx.get(f"{files}/chart.png", headers=auth)
    assert image.headers["content-type"] == "image/png"
    outside = httpx.get(f"{files}/..%2Fstatus.json", headers=auth)
    assert outside.status_code == 404
    view = httpx.get(f"{base(server)}/ui/api/runs/{run_id}", headers=auth).json()
    assert {a["name"] for a in view["artifacts"]} == {"evil.html", "chart.png"}


def test_orchestrator_ui_prints_the_address_of_a_running_server(
    server: HttpServer, tmp_path: Path
) -> None:
    port = str(server.port)
    found = cli(tmp_path, "ui", "--port", port, "--no-open", ORCHESTRATOR_HTTP_TOKEN=TOKEN)
    assert (found.code, found.stdout.strip()) == (0, f"{base(server)}/ui/")
    assert "?token=<ORCHESTRATOR_HTTP_TOKEN>" in found.stderr
    assert TOKEN not in found.stdout + found.stderr
    unknown = cli(
        tmp_path, "ui", "orch-none", "--port", port, "--no-open", ORCHESTRATOR_HTTP_TOKEN=TOKEN
    )
    assert unknown.code == 2 and "no orchestration has the id 'orch-none'" in unknown.stderr
    assert not unknown.stdout
    slashed = cli(
        tmp_path, "ui", "../x", "--port", port, "--no-open", ORCHESTRATOR_HTTP_TOKEN=TOKEN
    )
    assert (slashed.code, slashed.stdout) == (2, "")
    assert "no orchestration has the id '../x'" in slashed.stderr, slashed.stderr
    one = cli(tmp_path, "ui", "orch-1", "--port", port, "--no-open", ORCHESTRATOR_HTTP_TOKEN="no")
    assert one.code == 2 and "refused the token in ORCHESTRATOR_HTTP_TOKEN" in one.stderr
    # a token no HTTP header can carry is a settings error, not a traceback
    accented = cli(tmp_path, "ui", "--port", port, ORCHESTRATOR_HTTP_TOKEN="t\u00f6ken-canary")
    assert accented.code == 2 and "printable ASCII" in accented.stderr, accented.stderr
    assert "Traceback" not in accented.stderr and "canary" not in accented.stderr
    closed = cli(tmp_path, "ui", "--port", str(free_port()), "--no-open")
    assert closed.code == 2
    assert "no server answers" in closed.stderr and "orchestrator serve --http" in closed.stderr
