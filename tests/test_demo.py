"""``orchestrator demo`` (both seed patterns against the built-in sites), the seed's pattern 1
example against those sites, and ``orchestrator doctor`` — with real Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.engine import Engine
from engine.runners.browser import BrowserSettings
from engine.spec import load_file
from engine.state import RunStatus
from server.demo.sites import DemoSites

REPO = Path(__file__).resolve().parent.parent
SEED_PATTERN_1 = REPO / "examples" / "seed_pattern1_local.yaml"


def cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    environment.update(ORCHESTRATOR_HOME=str(home), **env)
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_demo_runs_both_patterns(tmp_path: Path) -> None:
    result = cli(tmp_path / "home", "demo")

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "▶ Demo · Pattern 1: multi-site data collection" in out
    assert "▶ Demo · Pattern 2: content publishing pipeline" in out
    assert out.count("ORCHESTRATION COMPLETE\n") == 2
    assert "The demo sites received 3 published post(s)." in out
    assert "Site C (behind a login): ✓ Complete" in result.stderr
    assert "Publish[site_b]: ✓ Complete" in result.stderr  # after a 503 and a retry
    assert "Traceback" not in result.stderr
    listed = cli(tmp_path / "home", "list").stdout
    assert listed.count("succeeded") == 2


def test_demo_without_a_browser_runs_pattern_2_and_says_how_to_get_one(tmp_path: Path) -> None:
    result = cli(tmp_path / "home", "demo", ORCHESTRATOR_BROWSER_PATH=str(tmp_path / "none"))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("pattern 1 skipped: the browser set in")
    assert "playwright install chromium" in result.stdout
    assert "apt-get install chromium" in result.stdout
    assert "Pattern 1: multi-site" not in result.stdout
    assert "ORCHESTRATION COMPLETE" in result.stdout


@pytest.mark.anyio
async def test_the_seeds_pattern_1_runs_against_local_sites(tmp_path: Path) -> None:
    async with DemoSites() as sites:
        async with await Engine.open(
            tmp_path / "state.db",
            tmp_path / "runs",
            resume=False,
            resources={"browser": BrowserSettings()},
        ) as engine:
            run_id = await engine.submit(load_file(SEED_PATTERN_1), extra_vars={"base": sites.url})
            snapshot = await engine.wait(run_id, 120, include_outputs=True)
        published = dict(sites.state.published)
    assert snapshot.status == RunStatus.succeeded
    tasks = {task.task_id: task for task in snapshot.tasks}
    merged = tasks["merge_content"].output
    assert "Parallel beats serial for I/O-bound work" in merged
    assert "What at-least-once really means" not in merged  # page 3 of site B: not followed
    assert len(merged) == 4 + 2
    assert sorted(published) == ["site-a", "site-b", "site-c"]
    assert all(posts == [merged] for posts in published.values())
    assert tasks["publish_all[1]"].attempts == 2  # site B answers 503 once


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
