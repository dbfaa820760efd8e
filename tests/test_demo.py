"""``orchestrator demo`` (the seed's three patterns against the built-in sites, pattern 2's
model steps against the local stand-in model, pattern 3's inbox against the demo's IMAP server),
the seed's pattern 1 example against those sites, and ``orchestrator doctor`` — with real
Chromium."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli_process import kill_if_running, start_cli
from test_cli import wait_for_a_started_attempt

from multi_task_orchestrator.server.demo.sites import SITE_A, SITE_B, DemoSites

REPO = Path(__file__).resolve().parent.parent
SEED_PATTERN_1 = REPO / "examples" / "seed_pattern1_local.yaml"
SEED = REPO / "tests" / "fixtures" / "seed_example.yaml"  # the seed's example, verbatim


def cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    environment.update(ORCHESTRATOR_HOME=str(home), **env)
    return subprocess.run(
        [sys.executable, "-m", "multi_task_orchestrator.server.cli", *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_demo_runs_the_three_patterns(tmp_path: Path) -> None:
    result = cli(tmp_path / "home", "demo")

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "▶ Demo · Pattern 1: multi-site data collection" in out
    assert "▶ Demo · Pattern 2: content publishing pipeline" in out
    assert "The model in this pattern is a local stand-in, not a real one" in out
    assert "▶ Demo · Pattern 3: account checks" in out
    assert out.count("ORCHESTRATION COMPLETE\n") == 3
    assert "The demo sites received 3 published post(s)." in out
    assert (
        "The demo's token endpoint issued 2 access token(s); its social API refused 1 as "
        "expired\nand received 1 post(s); its profile API took 1 update(s); its notification "
        "receiver got 1."
    ) in out
    # pattern 2's model calls, counted against its budget, in its summary and its display
    assert "Tokens:     " in out and "Budget:     " in out and "of 60,000 tokens used" in out
    assert "├─ optimize: ✓ Complete" in result.stderr and "Tokens: " in result.stderr
    assert "Site C (behind a login): ✓ Complete" in result.stderr
    assert "Publish[site_b]: ✓ Complete" in result.stderr  # after a 503 and a retry
    assert "Social · post status: ✓ Complete" in result.stderr  # after a 401 and a refresh
    assert "Report summary: ✓ Complete" in result.stderr
    assert "Traceback" not in result.stderr
    listed = cli(tmp_path / "home", "list").stdout
    assert listed.count("succeeded") == 3


def test_demo_without_a_browser_runs_pattern_2_and_says_how_to_get_one(tmp_path: Path) -> None:
    result = cli(tmp_path / "home", "demo", ORCHESTRATOR_BROWSER_PATH=str(tmp_path / "none"))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("pattern 1 skipped: the browser set in")
    assert "playwright install chromium" in result.stdout
    assert "apt-get install chromium" in result.stdout
    assert "Pattern 1: multi-site" not in result.stdout
    assert result.stdout.count("ORCHESTRATION COMPLETE\n") == 2  # patterns 2 and 3


def test_ctrl_c_during_the_demo_cancels_its_run_and_runs_no_more(tmp_path: Path) -> None:
    """Ctrl-C left the demo's run `running` in the data folder, for a later resume to try
    against sites that are gone; it cancels it now, as in `run`."""
    home = tmp_path / "home"
    process = start_cli(home, "demo", ORCHESTRATOR_BROWSER_PATH=str(tmp_path))
    try:
        wait_for_a_started_attempt(home / "state.db", process)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        kill_if_running(process)

    assert process.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    assert "▶ Demo · Pattern 3" not in stdout
    runs = json.loads(cli(home, "list", "--json").stdout)
    assert runs and all(run["status"] != "running" for run in runs), runs


def test_the_seeds_pattern_1_example_is_the_seed_with_local_urls() -> None:
    seed = yaml.safe_load(SEED.read_text(encoding="utf-8"))["orchestration"]
    local = yaml.safe_load(SEED_PATTERN_1.read_text(encoding="utf-8"))["orchestration"]
    seed_tasks = {task["id"]: task for task in seed["tasks"]}
    local_tasks = {task["id"]: task for task in local["tasks"]}
    assert list(local_tasks) == list(seed_tasks)
    assert local_tasks["merge_content"] == seed_tasks["merge_content"]  # verbatim
    for extract in ("extract_site_a", "extract_site_b"):
        written, ours = seed_tasks[extract], local_tasks[extract]
        assert {**ours["config"], "url": None} == {**written["config"], "url": None}
        assert {**ours, "config": None} == {**written, "config": None}
    assert local["on_failure"] == seed["on_failure"]


@pytest.mark.anyio
async def test_the_seeds_pattern_1_as_written_merges_both_sites(tmp_path: Path) -> None:
    async with DemoSites() as sites:
        result = await asyncio.to_thread(
            cli,
            tmp_path / "home",
            "run",
            str(SEED_PATTERN_1),
            "--var",
            f"base={sites.url}",
            "--json",
        )
        published = dict(sites.state.published)

    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads(result.stdout)
    assert results["status"] == "succeeded"
    merged = results["tasks"]["merge_content"]["output"]
    site_a, site_b = merged["data"]  # one item per list the seed's selectors match
    assert [title for title, _ in SITE_A] == site_a.splitlines()[::2]
    assert [title for title, _ in SITE_B[0]] == site_b.splitlines()[::2]
    assert merged["url"] == [f"{sites.url}/site-a/", f"{sites.url}/site-b/"]
    assert merged["title"] == ["Site A — Engineering notes", "Site B — Feed, page 1"]
    assert sorted(published) == ["site-a", "site-b", "site-c"]
    assert all(posts == [merged] for posts in published.values())
    assert results["tasks"]["publish_all[1]"]["attempts"] == 2  # site B answers 503 once
    log = (Path(tmp_path / "home" / "runs" / results["id"]) / "execution_log.txt").read_text(
        encoding="utf-8"
    )
    assert "2 key(s) differed (url, title): kept every value in a list" in log


def test_doctor_reports_what_is_there(tmp_path: Path) -> None:
    result = cli(tmp_path / "home", "doctor")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines] == [
        "python",
        "home",
        "database",
        "vault",
        "browser",
        "limits",
    ]
    assert "(created on first run)" in lines[2]
    assert lines[4].startswith("✓ browser")


def test_doctor_names_a_damaged_database_and_a_missing_browser(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "state.db").write_bytes(b"this is not a database" * 100)
    result = cli(home, "doctor", ORCHESTRATOR_BROWSER_PATH=str(tmp_path / "none"))
    assert result.returncode == 1
    database = next(line for line in result.stdout.splitlines() if " database " in line)
    assert database.startswith("✗ database")
    assert "move it aside to start afresh" in database
    browser = next(line for line in result.stdout.splitlines() if " browser " in line)
    assert browser.startswith("! browser")
    assert (home / "state.db").read_bytes() == b"this is not a database" * 100
