"""A hostile document or server must not crash or exhaust the process, through ``orchestrator``
run as a subprocess (and the MCP client): deeply nested expressions are refused at validation,
an oversized or endless body is cut off while it streams (the child's peak memory stays
bounded), deeply nested JSON fails its attempt with a class, and ``file_processing`` writes
cannot be steered out of the workspace by a folder swapped for a symbolic link.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_server import LocalServer
from mcp import Client

from multi_task_orchestrator.server.app import create_server
from multi_task_orchestrator.server.settings import Settings
from multi_task_orchestrator.vault.store import Vault

REPO = Path(__file__).resolve().parent.parent
DEEP = "(" * 1000 + "a" + ")" * 1000


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


def orchestrator(
    home: Path, command: str, document: str, **settings: str
) -> subprocess.CompletedProcess[str]:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "doc.yaml"
    path.write_text(document, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["ORCHESTRATOR_HOME"] = str(home)
    env.update({f"ORCHESTRATOR_{key.upper()}": value for key, value in settings.items()})
    extra = ["--json"] if command == "run" else []
    done = subprocess.run(
        [sys.executable, "-m", "multi_task_orchestrator.server.cli", command, str(path), *extra],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def run(home: Path, document: str, **settings: str) -> dict[str, Any]:
    return json.loads(orchestrator(home, "run", document, **settings).stdout)


# --- 14: deeply nested expressions ----------------------------------------------------------

NESTED_EXPRESSIONS = {
    "extract": f"""
tasks:
  - id: t
    type: http
    config: {{url: "http://127.0.0.1:9/x", extract: "{DEEP}"}}
""",
    "paginate.next": f"""
tasks:
  - id: t
    type: http
    config: {{url: "http://127.0.0.1:9/x", paginate: {{next: "{DEEP}"}}}}
""",
    "where": f"""
tasks:
  - id: t
    type: data_processing
    config: {{action: filter, input: [1, 2], where: "{DEEP}"}}
""",
    "reference": f"""
tasks:
  - id: a
    type: delay
    config: {{seconds: 0}}
  - id: t
    type: delay
    dependencies: [a]
    config: {{seconds: "${{{"(" * 900}a.output{")" * 900}}}"}}
""",
    "pipes": """
tasks:
  - id: t
    type: data_processing
    config: {action: filter, input: [1, 2], where: "@ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @ | @"}
""",  # noqa: E501
}


@pytest.mark.parametrize("field", NESTED_EXPRESSIONS)
def test_deeply_nested_expressions_are_refused_at_validation(tmp_path: Path, field: str) -> None:
    done = orchestrator(tmp_path / "home", "validate", NESTED_EXPRESSIONS[field])
    assert done.returncode == 2, done.stdout + done.stderr
    shown = done.stdout + done.stderr
    assert "levels deep" in shown or "operations deep" in shown, shown
    assert "RecursionError" not in shown


@pytest.mark.anyio
async def test_a_deeply_nested_expression_is_a_tool_error_not_an_internal_error(
    tmp_path: Path,
) -> None:
    async with Client(create_server(Settings(home=tmp_path, shutdown_grace=1))) as client:
        result = await client.call_tool(
            "validate_orchestration", {"spec": NESTED_EXPRESSIONS["extract"]}
        )
    text = "\n".join(getattr(block, "text", "") for block in result.content) + str(
        result.structured_content
    )
    assert "levels deep" in text, text
    assert "internal error" not in text.lower()


# --- 11: response size ----------------------------------------------------------------------


def run_measured(home: Path, document: str, **settings: str) -> tuple[dict[str, Any], int]:
    """Run ``document`` and return the results and the child's peak RSS in MiB.

    The peak is the child's own ``VmHWM``, read while it runs: its rusage would not do, since
    Linux folds the test process's own peak (the memory the child started from before exec)
    into the child's ``ru_maxrss``."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "doc.yaml"
    path.write_text(document, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["ORCHESTRATOR_HOME"] = str(home)
    env.update({f"ORCHESTRATOR_{key.upper()}": value for key, value in settings.items()})
    out, err = home / "stdout", home / "stderr"
    peak_kib = 0
    with out.open("w") as stdout, err.open("w") as stderr:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "multi_task_orchestrator.server.cli",
                "run",
                str(path),
                "--json",
            ],
            cwd=REPO,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
        status = Path(f"/proc/{child.pid}/status")
        while child.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
            time.sleep(0.01)
    assert "Traceback" not in err.read_text(), err.read_text()
    return json.loads(out.read_text()), peak_kib // 1024


def fetch(url: str, **config: str) -> str:
    extra = "".join(f", {key}: {value}" for key, value in config.items())
    return f"""
tasks:
  - id: get
    type: http
    timeout: 120s
    config: {{url: "{url}", response: text{extra}}}
"""


def too_large(results: dict[str, Any]) -> str:
    task = results["tasks"]["get"]
    assert (task["state"], task["error_class"]) == ("failed", "too_large"), task
    return task["error"]


def test_an_oversized_body_is_cut_off_while_it_streams(tmp_path: Path, server: LocalServer) -> None:
    results, peak = run_measured(
        tmp_path / "home",
        fetch(server.url("/big/oversized?mb=160")),
        max_response_bytes="4MiB",
    )
    error = too_large(results)
    assert "larger than 4 MiB" in error and "ORCHESTRATOR_MAX_RESPONSE_BYTES" in error, error
    assert peak < 160, f"the CLI peaked at {peak} MiB for a 160 MiB body cut at 4 MiB"
    assert server.state.sent["oversized"] < 64 * 1024 * 1024


def test_an_endless_body_fails_at_the_tasks_own_lower_limit(
    tmp_path: Path, server: LocalServer
) -> None:
    results, peak = run_measured(
        tmp_path / "home", fetch(server.url("/big/endless?mb=0"), max_response_bytes="1MB")
    )
    error = too_large(results)
    assert "the task's max_response_bytes" in error and "50 MiB" in error, error
    assert peak < 160


def test_a_trickling_body_is_cut_off_at_the_configs_timeout(
    tmp_path: Path, server: LocalServer
) -> None:
    # one byte every 0.2 s never trips httpx's per-read timeout: the config's timeout is on
    # the whole request (the task's own timeout, 60 s, would end it otherwise)
    url = server.url("/trickle/slowly?every=0.2")
    document = fetch(url, timeout="1s").replace("timeout: 120s", "timeout: 60s")
    results, _ = run_measured(tmp_path / "home", document)
    task = results["tasks"]["get"]
    assert (task["state"], task["error_class"]) == ("failed", "timeout"), task
    assert task["error"] == f"GET {url} timed out after 1s", task
    assert server.state.sent["slowly"] >= 2


def test_a_declared_oversized_body_is_refused_before_it_is_read(
    tmp_path: Path, server: LocalServer
) -> None:
    results = run(
        tmp_path / "home",
        fetch(server.url("/big/declared?mb=100&length=1")),
        max_response_bytes="2MiB",
    )
    assert "100 MiB declared" in too_large(results)


def test_a_compressed_body_is_limited_by_its_decoded_size(
    tmp_path: Path, server: LocalServer
) -> None:
    results, peak = run_measured(
        tmp_path / "home",
        fetch(server.url("/big/bomb?mb=200&gzip=1")),
        max_response_bytes="4MiB",
    )
    too_large(results)
    assert peak < 160
    assert server.state.sent["bomb"] < 4 * 1024 * 1024  # a few hundred KiB carried 200 MiB


def test_a_task_cannot_raise_the_servers_limit(tmp_path: Path, server: LocalServer) -> None:
    results = run(
        tmp_path / "home",
        fetch(server.url("/big/raise?mb=3"), max_response_bytes="1GB"),
        max_response_bytes="1MiB",
    )
    assert "ORCHESTRATOR_MAX_RESPONSE_BYTES" in too_large(results)


# --- 10: deeply nested data -----------------------------------------------------------------


@pytest.fixture
def vaulted(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    vault = Vault.open(home / "vault.db")
    vault.set("TOKEN", "sk-canary-5e0d11f3a9", allowed_hosts=["127.0.0.1"])
    vault.close()
    return home


@pytest.mark.parametrize("levels", [700, 950, 100_000])
def test_deeply_nested_json_fails_its_attempt_and_the_run_finishes(
    vaulted: Path, server: LocalServer, levels: int
) -> None:
    results = run(
        vaulted,
        f"""
tasks:
  - id: get
    type: http
    timeout: 60s
    config:
      url: "{server.url(f"/deep?levels={levels}")}"
      headers: {{X-Key: "${{vault.TOKEN}}"}}
  - id: after
    type: delay
    dependencies: [get]
    run_if: always
    config: {{seconds: 0}}
""",
    )
    task = results["tasks"]["get"]
    assert (task["state"], task["error_class"]) == ("failed", "too_deep"), task
    assert "128 levels" in task["error"]
    assert results["tasks"]["after"]["state"] == "succeeded"
    assert results["counts"]["running"] == 0


def test_a_large_json_body_is_read_whole_and_checked_for_depth(
    vaulted: Path, server: LocalServer
) -> None:
    """A body past ``LARGE_BODY`` (1 MiB) is parsed on a worker thread, not on the event
    loop: it arrives whole, and one nested too deep is refused the same way."""
    results = run(
        vaulted,
        f"""
tasks:
  - id: large
    type: http
    config: {{url: "{server.url("/large-json?items=2000")}"}}
  - id: deep
    type: http
    config: {{url: "{server.url("/deep?levels=950&pad=2000000")}"}}
""",
    )
    large, deep = results["tasks"]["large"], results["tasks"]["deep"]
    assert large["state"] == "succeeded", large
    data = large["output"]["data"]
    assert len(data) == 2000 and data[1999].startswith("001999x")
    assert (deep["state"], deep["error_class"]) == ("failed", "too_deep"), deep


def test_json_nested_within_the_limit_is_still_read(vaulted: Path, server: LocalServer) -> None:
    results = run(
        vaulted,
        f"""
tasks:
  - id: get
    type: http
    config: {{url: "{server.url("/deep?levels=100")}", headers: {{X-Key: "${{vault.TOKEN}}"}}}}
""",
    )
    assert results["tasks"]["get"]["state"] == "succeeded", results["tasks"]["get"]


# --- 15: file_processing writes -------------------------------------------------------------


def test_a_folder_swapped_for_a_link_never_sends_a_write_outside(tmp_path: Path) -> None:
    workspace, outside = tmp_path / "workspace", tmp_path / "outside"
    (workspace / "d").mkdir(parents=True)
    outside.mkdir()
    stop, swaps = threading.Event(), [0]

    def swap() -> None:
        # a writer may create a fresh folder d while the real one is parked: drop it
        folder, parked = workspace / "d", workspace / "d-parked"
        while not stop.is_set():
            os.rename(folder, parked)
            with contextlib.suppress(FileExistsError):
                os.symlink(outside, folder)
                swaps[0] += 1
            while True:
                if folder.is_symlink():
                    folder.unlink()
                shutil.rmtree(folder, ignore_errors=True)
                with contextlib.suppress(FileNotFoundError, OSError):
                    os.rename(parked, folder)
                    break

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        results = run(
            tmp_path / "home",
            """
tasks:
  - id: write
    type: file_processing
    for_each: "${vars.names}"
    config: {action: write, path: "d/${item}.txt", content: "x"}
vars:
  names: NAMES
""".replace("NAMES", json.dumps([f"f{number}" for number in range(400)])),
            workspace=str(workspace),
        )
    finally:
        stop.set()
        swapper.join()
    assert list(outside.iterdir()) == []
    assert swaps[0] > 0
    assert results["counts"]["running"] == 0
    children = [task for task in results["tasks"].values() if task.get("parent_id")]
    assert len(children) == 400
    for child in children:
        assert child["state"] in ("succeeded", "failed"), child
        assert child["state"] == "succeeded" or "Traceback" not in str(child["error"])


@pytest.mark.parametrize("path", [".", "./", ""])
def test_writing_to_the_workspace_itself_is_refused(tmp_path: Path, path: str) -> None:
    # written in the document, the path is refused when the document is checked; given by a
    # var, when the task runs
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    document = f"""
vars: {{target: "{path}"}}
tasks:
  - id: write
    type: file_processing
    config: {{action: write, path: "{path}", content: "x"}}
  - id: given
    type: file_processing
    config: {{action: write, path: "${{vars.target}}", content: "x"}}
"""
    checked = orchestrator(tmp_path / "home", "validate", document, workspace=str(workspace))
    assert checked.returncode == 2, checked.stdout
    assert "tasks[0].config.path: the path" in checked.stderr, checked.stderr
    results = run(
        tmp_path / "home",
        document.replace(f'path: "{path}", content', 'path: "ok.txt", content'),
        workspace=str(workspace),
    )
    task = results["tasks"]["given"]
    assert (task["state"], task["error_class"]) == ("failed", "config"), task
    assert "path" in task["error"]
    assert [p.name for p in workspace.iterdir()] == ["ok.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "workspace"]


def test_a_write_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    results = run(
        tmp_path / "home",
        f"""
tasks:
  - id: write
    type: file_processing
    config: {{action: write, path: big.txt, content: "{"x" * 5000}"}}
  - id: append
    type: file_processing
    dependencies: [write]
    run_if: always
    config: {{action: append, path: small.txt, content: "{"y" * 5000}"}}
""",
        workspace=str(workspace),
        max_write_bytes="4KiB",
    )
    for name in ("write", "append"):
        task = results["tasks"][name]
        assert (task["state"], task["error_class"]) == ("failed", "too_large"), task
        assert (
            "ORCHESTRATOR_MAX_WRITE_BYTES (4 KiB)" in task["error"] or "4096 bytes" in task["error"]
        ), task["error"]
    assert not workspace.exists() or list(workspace.iterdir()) == []


def test_a_deeply_nested_json_file_fails_its_read(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "deep.json").write_text('{"a":' * 900 + "1" + "}" * 900)
    results = run(
        tmp_path / "home",
        """
tasks:
  - id: read
    type: file_processing
    config: {action: read, path: deep.json}
""",
        workspace=str(workspace),
    )
    task = results["tasks"]["read"]
    assert (task["state"], task["error_class"]) == ("failed", "too_deep"), task


DOUBLING = " | ".join(["[@, @]"] * 20)


@pytest.mark.parametrize(
    "config",
    [
        f'{{url: "http://127.0.0.1:1/", extract: "{DOUBLING}"}}',
        f'{{url: "http://127.0.0.1:1/", paginate: {{next: "{DOUBLING}"}}}}',
    ],
    ids=["extract", "paginate.next"],
)
def test_a_runner_expression_that_multiplies_its_input_is_refused(
    tmp_path: Path, config: str
) -> None:
    document = f"tasks:\n  - id: t\n    type: http\n    config: {config}\n"
    done = orchestrator(tmp_path / "home", "validate", document)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "repeat its input more than 10,000 times" in done.stdout + done.stderr


def test_a_runner_search_that_builds_too_much_fails_its_task(
    tmp_path: Path, server: LocalServer
) -> None:
    # each stage repeats its input 100 times: 10,000 in all passes validation, but over 1,000
    # items the result would hold 10 million values
    hundred = "[" + ", ".join(["@"] * 100) + "]"
    document = f"""
tasks:
  - id: t
    type: http
    config:
      method: POST
      url: "{server.url()}/echo"
      json: {list(range(1000))}
      extract: "json[*].{hundred} | [*].{hundred}"
"""
    task = run(tmp_path / "home", document)["tasks"]["t"]
    assert (task["state"], task["error_class"]) == ("failed", "too_large"), task
    assert "2,000,000" in task["error"]
