"""The browser_automation runner against real Chromium and a site served on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import struct
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from memory_secrets import MemorySecrets

from multi_task_orchestrator.engine.engine import Engine
from multi_task_orchestrator.engine.runners.browser import (
    BrowserPool,
    BrowserRunner,
    BrowserSettings,
)
from multi_task_orchestrator.engine.runners.browser.discovery import (
    DEBIAN_CHROMIUM,
    SYSTEM_PACKAGE,
    default_candidates,
    find_browser,
)
from multi_task_orchestrator.engine.state import RunSnapshot, TaskSnapshot
from tests.browser_site import ARTICLES, PAGE_ITEMS, PASSWORD, SECRET_ITEMS, USER, SiteState
from tests.browser_site import serve_site as _serve_site

pytestmark = pytest.mark.anyio
LOCAL = ["127.0.0.1"]
BROWSER_NAMES = {"chromium", "chrome", "chromium-browser", "headless_shell"}


@pytest.fixture
def site() -> Iterator[tuple[str, SiteState]]:
    with _serve_site() as served:
        yield served


@asynccontextmanager
async def browser_engine(
    home: Path, secrets: MemorySecrets | None = None, **settings: Any
) -> AsyncIterator[Engine]:
    engine = await Engine.open(
        home / "state.db",
        home / "runs",
        resume=False,
        secrets=secrets or MemorySecrets(),
        runner_settings={"browser_automation": BrowserSettings(**settings)},
    )
    async with engine:
        yield engine


async def run(engine: Engine, *tasks: dict[str, Any]) -> RunSnapshot:
    run_id = await engine.submit({"name": "browser test", "tasks": list(tasks)})
    return await engine.wait(run_id, timeout=60, include_outputs=True)


def browser_task(task_id: str, **config: Any) -> dict[str, Any]:
    return {"id": task_id, "type": "browser_automation", "config": config}


def task(snapshot: RunSnapshot, task_id: str) -> TaskSnapshot:
    return next(t for t in snapshot.tasks if t.task_id == task_id)


def pool_of(engine: Engine) -> BrowserPool:
    runner = engine.runner("browser_automation")
    assert isinstance(runner, BrowserRunner) and runner.pool is not None
    return runner.pool


async def logs(engine: Engine, snapshot: RunSnapshot) -> list[str]:
    return [event.message for event in await engine.events(snapshot.id)]


# --- extraction -------------------------------------------------------------------------------


async def test_seed_shorthand_content_after_load_fields_and_pagination(
    home: Path, site: tuple[str, SiteState]
) -> None:
    base, _ = site
    async with browser_engine(home) as engine:
        snapshot = await run(
            engine,
            browser_task("seed", url=f"{base}/list", action="extract", selector=".article"),
            browser_task("late", url=f"{base}/late", action="extract", selector="li h2"),
            browser_task(
                "fields",
                url=f"{base}/list",
                steps=[
                    {
                        "extract": {
                            "selector": "li.article",
                            "fields": {"title": "h2", "link": "a@href", "price": ".price"},
                        }
                    }
                ],
            ),
            browser_task(
                "pages",
                url=f"{base}/pages",
                action="extract",
                selector="li.item",
                paginate={"next": "a.next", "max_pages": 5},
            ),
        )
        pool = pool_of(engine)
        launches = pool.launches

    assert snapshot.status == "succeeded", [t.error for t in snapshot.tasks]
    seed = task(snapshot, "seed").output
    assert seed == {
        "url": f"{base}/list",
        "title": "Articles",
        "data": [f"{title}\nread{price}" for title, _, price in ARTICLES],
        "artifacts": [],
    }
    assert task(snapshot, "late").output["data"] == [title for title, _, _ in ARTICLES]
    assert task(snapshot, "fields").output["data"] == [
        {"title": title, "link": f"{base}{href}", "price": price} for title, href, price in ARTICLES
    ]
    pages = task(snapshot, "pages").output
    assert pages["data"] == [item for number in (1, 2, 3) for item in PAGE_ITEMS[number]]
    assert pages["url"] == f"{base}/pages?p=3"
    assert launches == 1


async def test_a_failing_step_names_the_step_its_selector_and_the_page(
    home: Path, site: tuple[str, SiteState]
) -> None:
    base, _ = site
    async with browser_engine(home) as engine:
        snapshot = await run(
            engine,
            browser_task(
                "missing",
                url=f"{base}/list",
                step_timeout="300ms",
                steps=[
                    {"click": "li.article h2", "timeout": "10s"},
                    {"extract": ".does-not-exist"},
                ],
            ),
            browser_task("busy", url=f"{base}/busy", action="extract", selector="p"),
        )

    failed = task(snapshot, "missing")
    assert failed.state == "failed"
    assert failed.error_class == "timeout"
    assert failed.error is not None
    assert failed.error.startswith(
        f"step 2 (extract '.does-not-exist') failed on {base}/list: timed out after 0.3s"
    )
    busy = task(snapshot, "busy")
    assert (busy.state, busy.error_class) == ("failed", "http_5xx")
    assert busy.error == f"url (goto {base}/busy) failed on {base}/busy: the page answered HTTP 503"


async def test_form_steps_and_named_results(home: Path, site: tuple[str, SiteState]) -> None:
    base, _ = site
    steps = [
        {"fill": {"selector": "#q", "value": "hello"}},
        {"type": {"selector": "#typed", "text": "abc"}},
        {"press": {"selector": "#typed", "key": "Enter"}},
        {"select": {"selector": "#size", "value": "l"}},
        {"check": "#agree"},
        {"hover": "#go"},
        {"click": "#go"},
        {"wait_for": "#out:not(:empty)"},
        {"scroll": "#bottom"},
        {"assert": {"selector": "#out", "text": "hello"}},
        {"evaluate": "window.scrollY > 0", "as": "scrolled"},
        {"extract": {"selector": "#out", "all": False, "as": "form"}},
    ]
    async with browser_engine(home) as engine:
        snapshot = await run(
            engine,
            browser_task("form", url=f"{base}/form", steps=steps),
            browser_task(
                "unmet",
                url=f"{base}/form",
                steps=[{"assert": {"text": "no such words"}, "timeout": "200ms"}],
            ),
        )

    assert task(snapshot, "form").output == {
        "url": f"{base}/form",
        "title": "Form",
        "data": {"scrolled": True, "form": '["hello","abc","l",true,"yes"]'},
        "artifacts": [],
    }
    unmet = task(snapshot, "unmet")
    assert (unmet.state, unmet.error_class) == ("failed", "error")
    assert unmet.error == (
        f"step 1 (assert text 'no such words') failed on {base}/form: it did not hold within 0.2s"
    )


async def test_step_syntax_mistakes_are_reported_with_a_fix(engine: Engine) -> None:
    document = {
        "name": "typos",
        "tasks": [
            browser_task(
                "extract",
                url="https://example.org",
                steps=[{"clik": "#more"}, {"fill": "#user"}, {"wait_for": {}}],
            )
        ],
    }
    issues = [(issue.loc, issue.message, issue.hint) for issue in engine.validate(document).issues]
    steps = ("tasks", 0, "config", "steps")
    assert issues == [
        ((*steps, 0), "unknown step 'clik'", "did you mean 'click'?"),
        (
            (*steps, 1),
            "'fill' takes a mapping of options",
            "write fill: {selector: ..., value: ...}",
        ),
        (
            (*steps, 2, "wait_for"),
            "wait_for waits for exactly one thing; it was given none",
            "give one of selector, text, url, load_state, time",
        ),
    ]


# --- artifacts ----------------------------------------------------------------------------


async def test_screenshot_and_pdf_are_artifacts(home: Path, site: tuple[str, SiteState]) -> None:
    base, _ = site
    async with browser_engine(home) as engine:
        snapshot = await run(
            engine,
            browser_task(
                "shot",
                url=f"{base}/list",
                viewport={"width": 800, "height": 600},
                steps=[{"screenshot": "front"}, {"screenshot": "front"}, "pdf"],
            ),
        )

    output = task(snapshot, "shot").output
    assert output["artifacts"] == ["shot-front.png", "shot-front-2.png", "shot-page.pdf"]
    folder = Path(snapshot.run_dir or "") / "artifacts"
    image = (folder / "shot-front.png").read_bytes()
    assert image[:8] == b"\x89PNG\r\n\x1a\n"
    assert image[12:16] == b"IHDR"
    assert struct.unpack(">II", image[16:24]) == (800, 600)
    assert 2_000 < len(image) < 2_000_000
    assert (folder / "shot-page.pdf").read_bytes()[:5] == b"%PDF-"


# --- logins and sessions ------------------------------------------------------------------


def login_config(base: str, **extra: Any) -> dict[str, Any]:
    return {
        "url": f"{base}/protected",
        "session": "portal",
        "logged_in_when": {"url": "**/protected"},
        "login": [
            {"goto": f"{base}/login"},
            {"fill": {"selector": "#user", "value": "${vault.portal_user}"}},
            {"fill": {"selector": "#password", "value": "${vault.portal_password}"}},
            {"click": "button[type=submit]"},
            {"wait_for": {"url": "**/protected"}},
        ],
        "steps": [{"extract": "li.secret"}],
        **extra,
    }


def credentials(hosts: list[str]) -> dict[str, tuple[str, list[str]]]:
    return {"portal_user": (USER, hosts), "portal_password": (PASSWORD, hosts)}


def stored_sid(secrets: MemorySecrets) -> str:
    state = json.loads(secrets.secrets["portal"][0])
    return next(cookie["value"] for cookie in state["cookies"] if cookie["name"] == "sid")


async def test_login_with_vault_credentials_then_the_session_is_reused(
    home: Path, site: tuple[str, SiteState]
) -> None:
    base, state = site
    secrets = MemorySecrets(credentials(LOCAL))
    async with browser_engine(home, secrets) as engine:
        first = await run(engine, browser_task("members", **login_config(base)))
        second = await run(engine, browser_task("again", **login_config(base)))
        first_log = await logs(engine, first)

    assert first.status == "succeeded", [t.error for t in first.tasks]
    assert task(first, "members").output["data"] == SECRET_ITEMS
    assert task(first, "members").attempts == 1
    assert state.posted == [{"user": USER, "password": PASSWORD}]
    assert secrets.stored == ["portal"]
    assert secrets.secrets["portal"][1] == LOCAL
    assert stored_sid(secrets) in state.sessions
    assert "no stored session 'portal' yet: the login steps will make one" in first_log
    assert "session expired: logged in again" in first_log
    # the same session later: its context still holds the cookie, so no second login
    assert task(second, "again").output["data"] == SECRET_ITEMS
    assert state.login_posts == 1


async def test_an_expired_session_logs_in_once_and_the_task_succeeds(
    home: Path, site: tuple[str, SiteState]
) -> None:
    base, state = site
    expired = {
        "cookies": [
            {
                "name": "sid",
                "value": "expired-token",
                "domain": "127.0.0.1",
                "path": "/",
                "expires": -1,
                "httpOnly": True,
                "secure": False,
                "sameSite": "Lax",
            }
        ],
        "origins": [],
    }
    secrets = MemorySecrets({**credentials(LOCAL), "portal": (json.dumps(expired), LOCAL)})
    async with browser_engine(home, secrets) as engine:
        snapshot = await run(engine, browser_task("members", **login_config(base)))
        log = await logs(engine, snapshot)

    members = task(snapshot, "members")
    assert members.state == "succeeded", members.error
    assert members.attempts == 1
    assert members.output["data"] == SECRET_ITEMS
    assert members.output["url"] == f"{base}/protected"
    assert state.login_posts == 1
    assert secrets.stored == ["portal"]
    assert stored_sid(secrets) in state.sessions
    assert log.count("session expired: logged in again") == 1


async def test_secrets_are_never_typed_into_a_host_they_do_not_allow(
    home: Path, site: tuple[str, SiteState]
) -> None:
    base, state = site
    secrets = MemorySecrets(credentials(["portal.example.com"]))
    async with browser_engine(home, secrets) as engine:
        snapshot = await run(engine, browser_task("members", **login_config(base)))

    members = task(snapshot, "members")
    assert members.state == "failed"
    assert members.error_class == "config"
    assert members.error == (
        f"login step 2 (fill '#user') failed on {base}/login: secret 'portal_user' may not be "
        "sent to 127.0.0.1; allowed hosts: portal.example.com"
    )
    assert state.login_posts == 0
    assert secrets.stored == []


# --- the pool -----------------------------------------------------------------------------


async def test_twenty_extractions_under_a_limit_of_three_reuse_three_pages(
    home: Path, site: tuple[str, SiteState]
) -> None:
    base, state = site
    tasks = [
        browser_task(f"slow{n}", url=f"{base}/slow?n={n}", action="extract", selector=".done")
        for n in range(20)
    ]
    async with browser_engine(home, limit=3) as engine:
        snapshot = await run(engine, *tasks)
        pool = pool_of(engine)
        counters = (pool.launches, pool.contexts_created, pool.pages_created, pool.max_in_use)

    assert snapshot.status == "succeeded", [t.error for t in snapshot.tasks]
    assert {json.dumps(t.output["data"]) for t in snapshot.tasks} == {'["done"]'}
    assert state.slow_requests == 20
    assert state.slow_max_in_flight <= 3
    assert counters == (1, 3, 3, 3)


async def test_anonymous_tasks_share_a_page_but_not_cookies_or_storage(
    home: Path, site: tuple[str, SiteState]
) -> None:
    base, _ = site
    writer = browser_task("writer", url=f"{base}/storage/set", action="extract", selector=".done")
    reader = browser_task("reader", url=f"{base}/storage/read", action="extract", selector="#seen")
    reader["dependencies"] = ["writer"]
    isolated = browser_task("isolated", url=f"{base}/list", isolated=True)
    isolated["dependencies"] = ["reader"]
    async with browser_engine(home, limit=1) as engine:
        snapshot = await run(engine, writer, reader, isolated)
        pool = pool_of(engine)
        counters = (pool.launches, pool.contexts_created, pool.pages_created)

    assert snapshot.status == "succeeded", [t.error for t in snapshot.tasks]
    assert task(snapshot, "reader").output["data"] == ['["",null,null]']
    assert task(snapshot, "isolated").output["title"] == "Articles"
    # writer and reader used the same pooled page; the isolated task had its own context
    assert counters == (1, 2, 2)


# --- the network policy -------------------------------------------------------------------


async def test_refused_addresses_are_refused_in_the_browser(
    home: Path, site: tuple[str, SiteState]
) -> None:
    base, _ = site
    async with browser_engine(home) as engine:
        snapshot = await run(
            engine,
            browser_task("direct", url="http://169.254.169.254/latest/meta-data/"),
            browser_task("clicked", url=f"{base}/to-metadata", steps=[{"click": "#go"}]),
            browser_task("image", url=f"{base}/to-metadata", action="extract", selector="#go"),
            browser_task("redirected", url=f"{base}/redirect-metadata"),
        )

    refusal = (
        "refused http://169.254.169.254/latest/meta-data/: 169.254.169.254 is a link-local or "
        "cloud metadata address; these are always refused unless "
        "ORCHESTRATOR_NET_ALLOW_LINK_LOCAL=1"
    )
    errors = {
        name: (
            task(snapshot, name).state,
            task(snapshot, name).error_class,
            task(snapshot, name).error,
        )
        for name in ("direct", "clicked")
    }
    assert errors == {
        "direct": (
            "failed",
            "policy",
            f"url (goto http://169.254.169.254/latest/meta-data/) failed: {refusal}",
        ),
        "clicked": (
            "failed",
            "policy",
            f"step 1 (click '#go') failed on {base}/to-metadata: {refusal}",
        ),
    }
    # a redirect hop cannot be intercepted, but it is noticed and fails the task
    redirected = task(snapshot, "redirected")
    assert (redirected.state, redirected.error_class) == ("failed", "policy")
    assert redirected.error is not None
    assert redirected.error.startswith(f"url (goto {base}/redirect-metadata) failed")
    assert redirected.error.endswith(
        f": {refusal} (reached through a redirect from {base}/redirect-metadata)"
    )
    # a refused subresource (the page's image) is aborted; the page itself still works
    image = task(snapshot, "image")
    assert image.state == "succeeded"
    assert image.output["data"] == ["metadata"]


# --- crashes and a missing browser --------------------------------------------------------


def chromium_processes() -> list[int]:
    """Pids of the Chromium browser processes started (indirectly) by this test process."""
    parents: dict[int, int] = {}
    commands: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
        commands[int(entry.name)] = command
    me = os.getpid()

    def descends(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == me:
                return True
        return False

    return [
        pid
        for pid, command in commands.items()
        if Path(command[0]).name in BROWSER_NAMES
        and not any(arg.startswith("--type=") for arg in command)  # not a renderer, gpu, ...
        and descends(pid)
    ]


async def test_a_killed_browser_fails_the_attempt_and_the_retry_succeeds(
    home: Path, site: tuple[str, SiteState]
) -> None:
    base, state = site
    crash = browser_task("crash", url=f"{base}/crash", action="extract", selector=".done")
    crash["retry"] = {"max_attempts": 2, "initial": "100ms", "jitter": False}
    async with browser_engine(home) as engine:
        run_id = await engine.submit({"name": "crash", "tasks": [crash]})
        await anyio.to_thread.run_sync(state.crash_arrived.wait, 20)
        victims = chromium_processes()
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        snapshot = await engine.wait(run_id, timeout=60, include_outputs=True)
        log = await logs(engine, snapshot)
        launches = pool_of(engine).launches

    assert len(victims) == 1
    crashed = task(snapshot, "crash")
    assert crashed.state == "succeeded", crashed.error
    assert crashed.attempts == 2
    assert crashed.output["data"] == ["survived"]
    assert launches == 2
    assert any("failed (browser_crashed)" in line for line in log), log


async def test_no_browser_found_names_both_fixes(home: Path, site: tuple[str, SiteState]) -> None:
    base, _ = site
    missing = home / "no-such-chromium"
    job = browser_task("extract", url=f"{base}/list", action="extract", selector="h2")
    async with browser_engine(home, path=missing) as engine:
        configured = await run(engine, job)
    async with browser_engine(home, candidates=()) as engine:
        nowhere = await run(engine, job)

    failed = task(configured, "extract")
    assert failed.error_class == "config"
    assert failed.error == (
        "the browser set in ORCHESTRATOR_BROWSER_PATH does not exist: correct the setting, or "
        "unset it to use a browser found automatically (to get one, run 'playwright install "
        "chromium' (downloads it) or install the system package ('apt-get install chromium' on "
        f"Debian and Ubuntu)); it is set to {missing}"
    )
    failed = task(nowhere, "extract")
    assert failed.error_class == "config"
    assert failed.error == (
        "no Chromium browser found: run 'playwright install chromium' (downloads it) or install "
        "the system package ('apt-get install chromium' on Debian and Ubuntu), or set "
        "ORCHESTRATOR_BROWSER_PATH to a Chromium executable (looked at: nowhere)"
    )


def test_discovery_falls_back_to_the_system_package() -> None:
    found = find_browser(None, default_candidates("/nonexistent/ms-playwright/chrome"))
    assert (found.path, found.source) == (DEBIAN_CHROMIUM, SYSTEM_PACKAGE)
    assert [str(c.path) for c in found.looked_at][:2] == [
        "/nonexistent/ms-playwright/chrome",
        str(DEBIAN_CHROMIUM),
    ]
