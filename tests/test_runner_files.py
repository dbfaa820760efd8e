"""The ``file_processing`` runner through a real engine, in a temporary workspace.

Round trips write each format and read it back (and check the bytes on disk); escapes are tried
with ``..``, absolute paths and symbolic links, for reading and for writing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_process import cli

from multi_task_orchestrator.engine.engine import Engine
from multi_task_orchestrator.engine.state import RunSnapshot, RunStatus, TaskSnapshot, TaskState

pytestmark = pytest.mark.anyio

ROWS = [
    {"name": "Ada", "city": "London", "note": 'says "hi", often'},
    {"name": "Grace", "city": "New York"},
]


async def run(engine: Engine, *tasks: dict[str, Any]) -> RunSnapshot:
    run_id = await engine.submit({"tasks": list(tasks)})
    snapshot = await engine.wait(run_id, 30, include_outputs=True)
    assert snapshot.status.terminal
    return snapshot


def files(task_id: str, depends: list[str] | None = None, **config: Any) -> dict[str, Any]:
    return {"id": task_id, "type": "file_processing", "config": config, "needs": depends or []}


def by_id(snapshot: RunSnapshot) -> dict[str, TaskSnapshot]:
    return {t.task_id: t for t in snapshot.tasks}


@pytest.fixture
def workspace(engine: Engine) -> Path:
    engine.workspace.mkdir(parents=True, exist_ok=True)
    return engine.workspace


async def test_each_format_round_trips(engine: Engine, workspace: Path) -> None:
    nested = {"title": "Prices — €", "items": [1, 2.5, None, True], "deep": {"a": []}}
    lines = [{"n": 1}, "two", [3]]
    snapshot = await run(
        engine,
        files("w_json", action="write", path="out/data.json", content=nested),
        files("w_jsonl", action="write", path="out/data.jsonl", content=lines),
        files("w_csv", action="write", path="out/data.csv", content=ROWS),
        files("w_text", action="write", path="out/notes.md", content="line 1\nline 2\n"),
        files("r_json", ["w_json"], action="read", path="out/data.json"),
        files("r_jsonl", ["w_jsonl"], action="read", path="out/data.jsonl"),
        files("r_csv", ["w_csv"], action="read", path="out/data.csv"),
        files("r_text", ["w_text"], action="read", path="out/notes.md"),
    )
    tasks = by_id(snapshot)
    assert snapshot.status == RunStatus.succeeded
    assert tasks["r_json"].output == nested
    assert tasks["r_jsonl"].output == lines
    assert tasks["r_csv"].output == [
        {"name": "Ada", "city": "London", "note": 'says "hi", often'},
        {"name": "Grace", "city": "New York", "note": ""},
    ]
    assert tasks["r_text"].output == "line 1\nline 2\n"
    assert tasks["w_csv"].output == {"path": "out/data.csv", "format": "csv", "bytes": 63}
    assert (workspace / "out/data.csv").read_text() == (
        'name,city,note\nAda,London,"says ""hi"", often"\nGrace,New York,\n'
    )
    assert (workspace / "out/data.jsonl").read_text() == '{"n": 1}\n"two"\n[3]\n'
    assert list((workspace / "out").iterdir()) and not list((workspace / "out").glob(".*"))


async def test_format_overrides_the_extension(engine: Engine, workspace: Path) -> None:
    snapshot = await run(
        engine,
        files("w", action="write", path="data.txt", format="json", content={"a": 1}),
        files("r", ["w"], action="read", path="data.txt", format="json"),
    )
    assert by_id(snapshot)["r"].output == {"a": 1}
    assert (workspace / "data.txt").read_text() == '{\n  "a": 1\n}\n'


async def test_append_adds_to_each_format(engine: Engine, workspace: Path) -> None:
    (workspace / "log.jsonl").write_text('{"n": 1}\n')
    (workspace / "rows.csv").write_text("name,city\nAda,London\n")
    (workspace / "list.json").write_text("[1]")
    (workspace / "notes.txt").write_text("a")
    snapshot = await run(
        engine,
        files("jsonl", action="append", path="log.jsonl", content=[{"n": 2}, {"n": 3}]),
        files("csv", action="append", path="rows.csv", content=[{"city": "Paris", "name": "Lu"}]),
        files("json", action="append", path="list.json", content=2),
        files("text", action="append", path="notes.txt", content="b"),
        files("new", action="append", path="fresh/new.csv", content=ROWS[1:]),
    )
    assert snapshot.status == RunStatus.succeeded
    assert (workspace / "log.jsonl").read_text() == '{"n": 1}\n{"n": 2}\n{"n": 3}\n'
    assert (workspace / "rows.csv").read_text() == "name,city\nAda,London\nLu,Paris\n"
    assert (workspace / "list.json").read_text() == "[\n  1,\n  2\n]\n"
    assert (workspace / "notes.txt").read_text() == "ab"
    assert (workspace / "fresh/new.csv").read_text() == "name,city\nGrace,New York\n"


async def test_parallel_appends_to_one_file_lose_nothing(engine: Engine, workspace: Path) -> None:
    append = files("add", action="append", path="all.jsonl", content={"n": "${item}"})
    snapshot = await run(engine, {**append, "for_each": list(range(20))})
    assert snapshot.status == RunStatus.succeeded
    lines = (workspace / "all.jsonl").read_text().splitlines()
    assert sorted(lines) == sorted(f'{{"n": {n}}}' for n in range(20))


async def test_glob_feeds_for_each(engine: Engine, workspace: Path, tmp_path: Path) -> None:
    inbox = workspace / "inbox"
    inbox.mkdir()
    for name, price in (("b", 2), ("a", 1), ("c", 3)):
        (inbox / f"{name}.json").write_text(f'{{"name": "{name}", "price": {price}}}')
    (inbox / "skip.txt").write_text("not json")
    outside = tmp_path / "secret.json"
    outside.write_text('{"name": "secret"}')
    (inbox / "link.json").symlink_to(outside)
    snapshot = await run(
        engine,
        files("find", action="glob", pattern="inbox/*.json"),
        {**files("load", ["find"], action="read", path="${item}"), "for_each": "${find.output}"},
    )
    tasks = by_id(snapshot)
    assert tasks["find"].output == ["inbox/a.json", "inbox/b.json", "inbox/c.json"]
    assert tasks["load"].output == [
        {"name": "a", "price": 1},
        {"name": "b", "price": 2},
        {"name": "c", "price": 3},
    ]
    assert [t.task_id for t in snapshot.tasks if t.parent_id == "load"] == [
        "load[0]",
        "load[1]",
        "load[2]",
    ]
    logs = [e.message for e in await engine.events(snapshot.id) if e.task_id == "find"]
    assert "left out 1 link(s) leading out of the workspace: inbox/link.json" in logs


async def test_list_shows_a_folder(engine: Engine, workspace: Path) -> None:
    (workspace / "docs" / "sub").mkdir(parents=True)
    (workspace / "docs" / "a.txt").write_text("hello")
    snapshot = await run(engine, files("ls", action="list", path="docs"))
    assert by_id(snapshot)["ls"].output == [
        {"name": "a.txt", "path": "docs/a.txt", "type": "file", "size": 5},
        {"name": "sub", "path": "docs/sub", "type": "directory", "size": None},
    ]


async def test_every_escape_is_refused(engine: Engine, workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (workspace / "out_link").symlink_to(outside)
    inside_absolute = workspace / "ok.txt"
    snapshot = await run(
        engine,
        files("dotdot", action="read", path="../outside/secret.txt"),
        files("dotdot_write", action="write", path="a/../../x.txt", content="x"),
        files("absolute", action="read", path=str(outside / "secret.txt")),
        files("absolute_write", action="write", path="/tmp/escape.txt", content="x"),
        files("link", action="read", path="out_link/secret.txt"),
        files("link_write", action="write", path="out_link/new.txt", content="x"),
        files("glob_up", action="glob", pattern="../*"),
        files("inside", action="write", path=str(inside_absolute), content="fine"),
    )
    tasks = by_id(snapshot)
    root = workspace.resolve()
    assert tasks["dotdot"].error == (
        f"refused path '../outside/secret.txt': '..' is not allowed; paths stay inside the "
        f"workspace {root}"
    )
    assert tasks["absolute"].error == (
        f"refused path '{outside / 'secret.txt'}': an absolute path outside the workspace "
        f"{root}; give a path relative to the workspace"
    )
    assert tasks["link"].error == (
        f"refused path 'out_link/secret.txt': a symbolic link leads out of the workspace {root} "
        f"(to {outside.resolve() / 'secret.txt'})"
    )
    assert tasks["glob_up"].error == (
        f"refused pattern '../*': patterns are relative to the workspace {root} and cannot "
        "contain '..'"
    )
    refused = ["dotdot", "dotdot_write", "absolute", "absolute_write", "link", "link_write"]
    for name in [*refused, "glob_up"]:
        assert (tasks[name].state, tasks[name].error_class) == (TaskState.failed, "config")
    assert tasks["inside"].state == TaskState.succeeded
    assert inside_absolute.read_text() == "fine"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert not Path("/tmp/escape.txt").exists()


async def test_read_errors_say_what_is_wrong(engine: Engine, workspace: Path) -> None:
    (workspace / "bad.json").write_text('{"a": 1,}')
    (workspace / "bad.jsonl").write_text('{"a": 1}\nnope\n')
    snapshot = await run(
        engine,
        files("missing", action="read", path="nope.json"),
        files("bad_json", action="read", path="bad.json"),
        files("bad_jsonl", action="read", path="bad.jsonl"),
        files("text_object", action="write", path="x.txt", content={"a": 1}),
    )
    errors = {t.task_id: t.error for t in snapshot.tasks}
    assert errors == {
        "missing": "'nope.json' does not exist",
        "bad_json": "'bad.json' is not valid JSON: Expecting property name enclosed in double "
        "quotes at line 1, column 9",
        "bad_jsonl": "'bad.jsonl' line 2 is not valid JSON: Expecting value",
        "text_object": "'x.txt': format text writes a string, not an object; use format: json",
    }


async def test_config_mistakes_are_validation_errors(engine: Engine) -> None:
    document = {
        "tasks": [
            files("a", action="write", path="x.json"),
            files("b", action="glob", pattern="*", path="x"),
            files("c", action="delete", path="x"),
        ]
    }
    issues = [(issue.message, issue.hint) for issue in engine.validate(document).errors]
    assert issues[:2] == [
        (
            "action 'write' needs 'content'",
            'e.g. {action: write, path: out/items.json, content: "${task.output}"}',
        ),
        ("action 'glob' does not use 'path'", "it uses: pattern"),
    ]
    assert issues[2][0].startswith("Input should be 'read', 'write', 'append', 'list' or 'glob'")


def test_a_workspace_setting_that_names_a_file_fails_the_task_clearly(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("x", encoding="utf-8")
    document = tmp_path / "list.yaml"
    document.write_text("tasks:\n  - {id: ls, type: file, config: {action: list}}\n")
    ran = cli(
        tmp_path / "home", "run", document, "--json", ORCHESTRATOR_WORKSPACE=str(not_a_folder)
    )
    task = json.loads(ran.stdout)["tasks"]["ls"]
    assert (task["state"], task["error_class"]) == ("failed", "config"), task
    assert task["error"] == (
        f"the workspace {not_a_folder} is not a folder; set ORCHESTRATOR_WORKSPACE to a folder"
    )


def test_a_workspace_that_holds_the_data_folder_is_refused(tmp_path: Path) -> None:
    # the data folder's vault.key and vault.db would be files a document could read and send
    document = tmp_path / "key.yaml"
    document.write_text("tasks:\n  - {id: key, type: file, config: {action: read, path: x}}\n")
    ran = cli(tmp_path / "home", "run", document, ORCHESTRATOR_WORKSPACE=str(tmp_path))
    assert ran.code == 2, ran.stdout
    assert ran.stderr.startswith("error: invalid setting: ORCHESTRATOR_WORKSPACE: ")
    assert f"holds the data folder {tmp_path / 'home'}" in ran.stderr


def test_paths_names_globstar_nan_and_csv_edges_through_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    mistakes = tmp_path / "mistakes.yaml"
    mistakes.write_text(
        "tasks:\n"
        "  - {id: w, type: file, config: {action: write, path: sub/, content: hi}}\n"
        "  - {id: a, type: file, config: {action: append, path: sub/., content: hi}}\n"
        "  - {id: g, type: file, config: {action: glob, pattern: '**.json'}}\n"
        "  - {id: e, type: file, config: {action: glob, pattern: ''}}\n"
    )
    checked = cli(home, "validate", mistakes)
    assert checked.code == 2, checked.stdout
    assert "the path 'sub/' names a folder; action 'write' needs a file" in checked.stderr
    assert "the path 'sub/.' names a folder; action 'append' needs a file" in checked.stderr
    assert "'**' must be a whole part of the pattern, not '**.json'" in checked.stderr
    assert "the pattern is empty" in checked.stderr

    long_name = "é" * 130  # 260 bytes in UTF-8
    near_limit = "n" * 250  # fits, though its temporary file's name would not
    document = tmp_path / "names.yaml"
    document.write_text(
        "tasks:\n"
        f"  - {{id: long, type: file, config: {{action: write, path: 'd/{long_name}', "
        "content: hi}}\n"
        f"  - {{id: near, type: file, config: {{action: write, path: 'd/{near_limit}', "
        "content: hi}}\n"
        "  - {id: every, type: file, needs: near, config: {action: glob, pattern: '**'}}\n"
        "  - {id: nan, type: file, config: {action: write, path: n.json, content: {a: .nan}}}\n"
        "  - {id: bom, type: file, config: {action: read, path: excel.csv}}\n"
        "  - {id: wide, type: file, config: {action: read, path: wide.csv}}\n"
        "  - {id: loop, type: file, config: {action: read, path: loop/x.json}}\n"
        "  - {id: ls, type: file, config: {action: list, path: .}}\n",
        encoding="utf-8",
    )
    (home / "workspace").mkdir(parents=True)
    (home / "workspace" / "excel.csv").write_text("name,n\nAda,1\n", encoding="utf-8-sig")
    (home / "workspace" / "wide.csv").write_text(f"note\n{'x' * 200_000}\n")
    (home / "workspace" / "loop").symlink_to("loop")
    ran = cli(home, "run", document, "--json")
    tasks = json.loads(ran.stdout)["tasks"]
    # a byte order mark is not part of the first column's name; a field over 128 KiB is read
    assert tasks["bom"]["output"] == [{"name": "Ada", "n": "1"}], tasks["bom"]
    assert tasks["wide"]["output"] == [{"note": "x" * 200_000}], tasks["wide"]["error"]
    assert (tasks["long"]["state"], tasks["long"]["error_class"]) == ("failed", "config")
    assert "is 260 bytes, and a file or folder name may have at most 255" in tasks["long"]["error"]
    assert tasks["near"]["state"] == "succeeded", tasks["near"]
    assert tasks["every"]["output"] == [f"d/{near_limit}", "excel.csv", "wide.csv"]
    assert sorted(p.name for p in (home / "workspace" / "d").iterdir()) == [near_limit]
    # a loop of links names nothing (it was a raw RuntimeError of pathlib), and list leaves it out
    assert tasks["loop"]["error"] == (
        "refused path 'loop/x.json': its symbolic links form a loop, so it names no file"
    )
    assert "loop" not in [entry["name"] for entry in tasks["ls"]["output"]], tasks["ls"]
    # JSON has no NaN: a file holding one would not be JSON to other programs
    assert tasks["nan"]["error"].startswith("'n.json': the content holds NaN or Infinity")
    assert not (home / "workspace" / "n.json").exists()
