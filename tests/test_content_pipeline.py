"""The model examples as written, offline: ``examples/pattern2_content_pipeline.yaml`` (research
over HTTP, three model calls, publishing to three WordPress-style sites with application
passwords from the vault) and ``examples/summarise_pages.yaml`` (50 pages summarised five at a
time, then merged), run by the ``orchestrator`` CLI against the demo's pages and WordPress
sites (``server/demo``) and the local stand-in model; and the demo's copy of pattern 2 is the
example's document.

The only changes are ``--var``s pointing at local servers. The model key and the application
passwords are canaries: never at rest in the data folder, never printed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_process import cli, home_with_secrets

from multi_task_orchestrator.server.demo.content import WP_PASSWORDS, WP_SECRETS, WP_USER
from multi_task_orchestrator.server.demo.sites import DemoSites
from multi_task_orchestrator.server.standin_model import NOTICE, StandinModel

REPO = Path(__file__).resolve().parent.parent
PATTERN_2 = REPO / "examples" / "pattern2_content_pipeline.yaml"
SUMMARISE = REPO / "examples" / "summarise_pages.yaml"
DEMO_PATTERN_2 = REPO / "server" / "demo" / "pattern2_content.yaml"
KEY = "sk-canary-pipeline-71d4e0b9a35c"

pytestmark = pytest.mark.anyio


def secrets_everywhere(home: Path, shown: str) -> list[str]:
    """Where a canary turned up: in what was shown, or in a file of the data folder."""
    found = []
    for secret in (KEY, *WP_PASSWORDS.values()):
        if secret in shown:
            found.append(f"{secret[:6]}… shown")
        for path in (p for p in home.rglob("*") if p.is_file()):
            if secret.encode() in path.read_bytes():
                found.append(f"{secret[:6]}… in {path}")
    return found


def run(home: Path, document: Path, **variables: str) -> tuple[dict[str, Any], str]:
    args: list[str] = []
    for name, value in variables.items():
        args += ["--var", f"{name}={value}"]
    done = cli(home, "run", document, *args, "--json", timeout=240)
    return json.loads(done.stdout), done.stdout + done.stderr


async def test_pattern_2_runs_as_written_against_local_sites_and_the_stand_in(
    tmp_path: Path,
) -> None:
    home = home_with_secrets(tmp_path / "home", LLM_API_KEY=KEY, **WP_SECRETS)
    with StandinModel(keys=frozenset({KEY})) as model:
        async with DemoSites() as sites:
            results, shown = await asyncio.to_thread(
                run,
                home,
                PATTERN_2,
                sources_base=sites.url,
                base_url=model.url,
                wp_user=WP_USER,
                site_a=f"{sites.url}/wp/site-a",
                site_b=f"{sites.url}/wp/site-b",
                site_c=f"{sites.url}/wp/site-c",
            )
            posts = dict(sites.state.content.posts)
        calls = model.state.calls()

    assert results["status"] == "succeeded", json.dumps(results["tasks"], indent=1)[:3000]
    tasks = results["tasks"]
    write, edit = tasks["write"]["output"], tasks["edit"]["output"]
    optimized = tasks["optimize"]["output"]["data"]
    assert set(optimized) == {"title", "slug", "excerpt", "tags"}
    assert write["text"].startswith(f"[{NOTICE}]")
    # each site received the optimized title, the edited text, as a draft
    assert sorted(posts) == ["site-a", "site-b", "site-c"]
    for received in posts.values():
        (post,) = received
        assert post["title"] == optimized["title"]
        assert post["slug"] == optimized["slug"] and post["excerpt"] == optimized["excerpt"]
        assert post["content"] == edit["text"]
        assert post["status"] == "draft"
    assert tasks["publish[1]"]["attempts"] == 2  # site B refuses its first post
    assert [output["status"] for output in tasks["publish"]["output"]] == [201, 201, 201]
    # three model calls, the first fed by the research
    assert [call["body"]["model"] for call in calls] == ["claude-sonnet-4-5"] * 3
    assert "is an idea in computing" in calls[0]["body"]["messages"][0]["content"]
    assert {call["headers"]["x-api-key"] for call in calls} == {KEY}
    assert results["usage"]["calls"] == 3 and results["usage"]["budget"]["spent"] is False
    assert secrets_everywhere(home, shown) == []


async def test_pattern_2_without_the_application_passwords_is_refused_by_the_sites(
    tmp_path: Path,
) -> None:
    wrong = {name: "wrong password" for name in WP_SECRETS}
    home = home_with_secrets(tmp_path / "home", LLM_API_KEY=KEY, **wrong)
    with StandinModel(keys=frozenset({KEY})) as model:
        async with DemoSites() as sites:
            results, _ = await asyncio.to_thread(
                run,
                home,
                PATTERN_2,
                sources_base=sites.url,
                base_url=model.url,
                site_a=f"{sites.url}/wp/site-a",
                site_b=f"{sites.url}/wp/site-b",
                site_c=f"{sites.url}/wp/site-c",
                wp_user=WP_USER,
            )
            posts = dict(sites.state.content.posts)
    assert results["status"] == "failed"
    assert posts == {}
    error = results["tasks"]["publish[0]"]["error"]
    assert "destination site_a" in error and "401" in error


def test_the_demos_pattern_2_is_the_examples_document() -> None:
    example = yaml.safe_load(PATTERN_2.read_text(encoding="utf-8"))["orchestration"]
    demo = yaml.safe_load(DEMO_PATTERN_2.read_text(encoding="utf-8"))
    assert demo["name"] == "Demo · Pattern 2: content publishing pipeline"
    assert {**demo, "name": None} == {**example, "name": None}


async def test_summarise_pages_fans_50_model_calls_out_five_at_a_time(tmp_path: Path) -> None:
    home = home_with_secrets(tmp_path / "home", LLM_API_KEY=KEY)
    with StandinModel(keys=frozenset({KEY})) as model:
        async with DemoSites() as sites:
            results, shown = await asyncio.to_thread(
                run, home, SUMMARISE, sources_base=sites.url, base_url=model.url
            )
        calls = model.state.calls()

    assert results["status"] == "succeeded", results["error"]
    pages = yaml.safe_load(SUMMARISE.read_text(encoding="utf-8"))["orchestration"]["vars"]["pages"]
    assert len(pages) == 50 and len(calls) == 50
    merged = results["tasks"]["merged"]["output"]
    assert len(merged) == 50 and all(set(item) == {"title", "summary"} for item in merged)
    assert results["usage"]["calls"] == 50
    # the named limit: never more than five model calls at once
    db = sqlite3.connect(home / "state.db")
    try:
        spans = db.execute(
            "SELECT started_at, finished_at FROM attempts WHERE orchestration_id = ? "
            "AND task_id LIKE 'summarise[%'",
            (results["id"],),
        ).fetchall()
    finally:
        db.close()
    assert len(spans) == 50
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    assert 1 < most <= 5
    assert secrets_everywhere(home, shown) == []


def test_basic_auth_of_the_demo_sites_takes_the_password_with_or_without_spaces() -> None:
    # what WordPress does with an application password, and what the vault holds
    from starlette.testclient import TestClient

    from multi_task_orchestrator.server.demo.sites import DemoState, create_app

    state = DemoState()
    state.content.failures_left.clear()
    client = TestClient(create_app(state))
    url = "/wp/site-a/wp-json/wp/v2/posts"
    for password in (WP_PASSWORDS["site-a"], WP_PASSWORDS["site-a"].replace(" ", "")):
        token = base64.b64encode(f"{WP_USER}:{password}".encode()).decode()
        answer = client.post(url, json={"title": "T"}, headers={"Authorization": f"Basic {token}"})
        assert answer.status_code == 201 and answer.json()["title"]["rendered"] == "T"
    assert client.post(url, json={"title": "T"}).status_code == 401
    assert len(client.get(url).json()) == 2
