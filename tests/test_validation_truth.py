"""Validation tells the truth: what ``validate`` accepts runs as written, through the user's doors.

Each test runs the real ``orchestrator`` command in a child process (``cli`` from test_cli), or
a real MCP server through the SDK's client: unknown secrets without a vault file, secrets where
no runner reveals them, other template languages' spellings of a reference, a vault that cannot
be unlocked, and a machine without a browser.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_process import cli
from mcp import Client

from multi_task_orchestrator.engine.runners import discover
from multi_task_orchestrator.server.app import create_server
from multi_task_orchestrator.server.settings import Settings
from multi_task_orchestrator.vault import Vault

SECRET_DOC = {
    "tasks": [
        {
            "id": "call",
            "type": "http",
            "config": {
                "url": "http://127.0.0.1:9/",
                "headers": {"Authorization": "Bearer ${vault.API_TOKEN}"},
            },
        }
    ]
}
PLAIN_DOC = {"tasks": [{"id": "wait", "type": "delay", "config": {"value": "done"}}]}
STORE_HINT = "orchestrator vault set API_TOKEN --hosts HOST"


def write(tmp_path: Path, document: dict[str, Any], name: str = "doc.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def passphrase_vault(home: Path, passphrase: str) -> None:
    """A vault locked with ``passphrase`` holding API_TOKEN (a cheap scrypt cost, in its header)."""
    vault = Vault.open(home / "vault.db", passphrase=passphrase, kdf_cost=10)
    vault.set("API_TOKEN", "token-value-1", allowed_hosts=["127.0.0.1"])
    vault.close()


# --- unknown secrets ------------------------------------------------------------------------


def test_an_unknown_secret_is_an_error_when_there_is_no_vault_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    document = write(tmp_path, SECRET_DOC)

    checked = cli(home, "validate", document)
    ran = cli(home, "run", document)

    for result in (checked, ran):
        assert result.code == 2, result.stdout + result.stderr
        assert "unknown secret 'API_TOKEN' in '${vault.API_TOKEN}'" in result.stderr
        assert STORE_HINT in result.stderr
    assert not (home / "vault.db").exists()  # validating creates no vault
    assert "no orchestrations yet" in cli(home, "list").stdout


# --- secrets where no runner reveals them ----------------------------------------------------


def test_a_secret_in_a_type_that_never_reveals_one_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    vault = Vault.open(home / "vault.db")
    vault.set("W_TOK", "w-token-value", allowed_hosts=["*"])
    vault.close()
    document = write(
        tmp_path,
        {
            "tasks": [
                {"id": "wait", "type": "delay", "config": {"value": "token=${vault.W_TOK}"}},
                {
                    "id": "save",
                    "type": "file_processing",
                    "config": {"action": "write", "path": "out.txt", "content": "${vault.W_TOK}"},
                },
                {
                    "id": "call",
                    "type": "http",
                    "config": {"url": "http://127.0.0.1:9/", "extract": "${vault.W_TOK}"},
                },
            ]
        },
    )

    checked = cli(home, "validate", document, "--json")
    ran = cli(home, "run", document)

    assert checked.code == 2
    issues = {issue["path"]: issue for issue in json.loads(checked.stdout)["issues"]}
    assert set(issues) == {
        "tasks[0].config.value",
        "tasks[1].config.content",
        "tasks[2].config.extract",
    }
    delay = issues["tasks[0].config.value"]
    assert delay["message"] == (
        "'${vault.W_TOK}' cannot be used in a delay task: delay never reveals secrets, so it "
        "would use the text '${vault.W_TOK}' as it is"
    )
    # where secrets may be used, from the runners themselves
    assert delay["hint"] == (
        "secrets may be used in agent (api_key); browser_automation (login, steps, url); email "
        "(password); http (auth, body, form, headers, json, params, url); llm (api_key); "
        "multi_publish (targets)"
    )
    assert "file_processing never reveals secrets" in issues["tasks[1].config.content"]["message"]
    assert issues["tasks[2].config.extract"]["message"] == (
        "'${vault.W_TOK}' cannot be used in config.extract of a http task: http reveals secrets "
        "only in auth, body, form, headers, json, params, url"
    )
    assert ran.code == 2
    assert "cannot be used in a delay task" in ran.stderr
    assert not (home / "workspace" / "out.txt").exists()


# --- other template languages' spellings of a reference --------------------------------------


def test_mustache_and_dollar_spellings_of_a_reference_are_errors(tmp_path: Path) -> None:
    home = tmp_path / "home"
    document = write(
        tmp_path,
        {
            "tasks": [
                {"id": "fetch", "type": "delay", "config": {"value": {"n": 1}}},
                {
                    "id": "report",
                    "type": "delay",
                    "dependencies": ["fetch"],
                    "config": {"value": ["got {{ fetch.output.n }}", "and $fetch.output"]},
                },
            ]
        },
    )

    checked = cli(home, "validate", document)
    ran = cli(home, "run", document)

    assert checked.code == 2
    assert (
        "tasks[1].config.value[0]: '{{ fetch.output.n }}' is not a reference (only ${...} is "
        "replaced), so it would be used as it is written (did you mean ${fetch.output.n}?)"
    ) in checked.stderr
    assert "'$fetch.output' is not a reference" in checked.stderr
    assert "did you mean ${fetch.output}?" in checked.stderr
    assert "2 error(s)" in checked.stderr
    assert ran.code == 2


def test_dollar_text_that_names_nothing_of_the_document_is_left_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    document = write(
        tmp_path,
        {
            "vars": {"title": "News"},
            "tasks": [
                {"id": "fetch", "type": "delay", "config": {"value": [1, 2]}},
                {
                    "id": "each",
                    "type": "delay",
                    "dependencies": ["fetch"],
                    "for_each": "${fetch.output}",
                    # prices, shell variables, a template's own words: none is this document's
                    "config": {
                        "value": "costs $5; $HOME/$USER; {{ title }}; $fetch and {{ item }}"
                    },
                },
            ],
        },
    )

    checked = cli(home, "validate", document)

    assert checked.code == 0, checked.stderr
    # `item` is also every template language's loop variable: a warning, not an error
    assert checked.stdout.count("warning:") == 1
    assert "'{{ item }}' is not a reference" in checked.stdout
    assert "did you mean ${item}?" in checked.stdout


# --- a vault that cannot be unlocked --------------------------------------------------------


def test_a_locked_vault_stops_only_documents_that_name_a_secret(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    passphrase_vault(home, "right")
    plain = write(tmp_path, PLAIN_DOC, "plain.yaml")
    secret = write(tmp_path, SECRET_DOC, "secret.yaml")
    wrong = {"ORCHESTRATOR_VAULT_PASSPHRASE": "wrong"}

    assert cli(home, "validate", plain, **wrong).code == 0
    assert cli(home, "run", plain, **wrong).code == 0
    assert cli(home, "run", plain).code == 0  # no passphrase at all

    refused = cli(home, "validate", secret, **wrong)
    assert refused.code == 2
    assert "'${vault.API_TOKEN}' needs the vault, which cannot be opened: cannot unlock" in (
        refused.stderr
    )
    unset = cli(home, "run", secret)
    assert unset.code == 2
    assert "this vault is locked with a passphrase; set ORCHESTRATOR_VAULT_PASSPHRASE" in (
        unset.stderr
    )
    assert cli(home, "validate", secret, ORCHESTRATOR_VAULT_PASSPHRASE="right").code == 0


@pytest.mark.anyio
async def test_mcp_server_with_a_locked_vault_starts_and_says_why_where_needed(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    passphrase_vault(home, "right")
    settings = Settings(home=home, vault_passphrase="wrong")  # type: ignore[arg-type]
    async with Client(create_server(settings)) as client:
        plain = await client.call_tool("validate_orchestration", {"spec": PLAIN_DOC})
        secret = await client.call_tool("validate_orchestration", {"spec": SECRET_DOC})
        listed = await client.call_tool("vault_list", {})
        submitted = await client.call_tool(
            "submit_orchestration", {"spec": PLAIN_DOC, "wait_seconds": 20}
        )

    assert plain.structured_content is not None and plain.structured_content["ok"] is True
    assert secret.structured_content is not None and secret.structured_content["ok"] is False
    (error,) = secret.structured_content["errors"]
    assert error["message"].startswith("'${vault.API_TOKEN}' needs the vault, which cannot be")
    assert listed.is_error
    assert "cannot unlock" in listed.content[0].text  # type: ignore[union-attr]
    assert submitted.structured_content is not None
    assert submitted.structured_content["progress"]["status"] == "succeeded"


@pytest.mark.anyio
async def test_mcp_validation_refuses_an_unknown_secret_and_one_a_delay_cannot_use(
    tmp_path: Path,
) -> None:
    document = {"tasks": [{"id": "w", "type": "delay", "config": {"value": "${vault.NOPE}"}}]}
    async with Client(create_server(Settings(home=tmp_path / "home"))) as client:
        unknown = await client.call_tool("validate_orchestration", {"spec": SECRET_DOC})
        misplaced = await client.call_tool("validate_orchestration", {"spec": document})
    assert unknown.structured_content is not None
    (error,) = unknown.structured_content["errors"]
    assert error["message"] == "unknown secret 'API_TOKEN' in '${vault.API_TOKEN}'"
    assert misplaced.structured_content is not None
    (error,) = misplaced.structured_content["errors"]
    assert "delay never reveals secrets" in error["message"]


# --- a machine without a browser ------------------------------------------------------------

BROWSER_DOC = {
    "tasks": [
        {
            "id": "page",
            "type": "browser_automation",
            "config": {"url": "http://127.0.0.1:9/", "action": "extract", "selector": "h1"},
        }
    ]
}


def test_no_browser_is_a_warning_at_validation_and_the_fix_in_full_after_a_run(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    document = write(tmp_path, BROWSER_DOC)
    # a long path: the summary must still show the whole fix
    missing = str(tmp_path / ("no-such-folder-" * 6) / "chromium")
    fix = (
        "correct the setting, or unset it to use a browser found automatically (to get one, run "
        "'playwright install chromium' (downloads it) or install the system package ('apt-get "
        "install chromium' on Debian and Ubuntu)); it is set to "
    )

    checked = cli(home, "validate", document, ORCHESTRATOR_BROWSER_PATH=missing)
    ran = cli(home, "run", document, ORCHESTRATOR_BROWSER_PATH=missing)

    assert checked.code == 0, checked.stderr
    assert "is valid" in checked.stdout
    assert (
        "warning: tasks[0].type: browser_automation tasks will fail on this machine: the browser "
        f"set in ORCHESTRATOR_BROWSER_PATH does not exist: {fix}{missing}"
    ) in checked.stdout
    assert ran.code == 1
    assert "warning: tasks[0].type: browser_automation tasks will fail" in ran.stderr
    assert f"- page: the browser set in ORCHESTRATOR_BROWSER_PATH does not exist: {fix}" in (
        ran.stdout
    )
    assert missing in ran.stdout


@pytest.mark.anyio
async def test_mcp_validation_warns_without_a_browser(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", browser_path=tmp_path / "none")
    async with Client(create_server(settings)) as client:
        result = await client.call_tool("validate_orchestration", {"spec": BROWSER_DOC})
    assert result.structured_content is not None
    assert result.structured_content["ok"] is True
    (warning,) = result.structured_content["warnings"]
    assert "browser_automation tasks will fail on this machine" in warning["message"]
    assert "playwright install chromium" in warning["message"]


# --- where secrets may be used comes from the runners ----------------------------------------


# Types whose secrets come only from their settings (the person's configuration: mcp's servers
# file), never from a document: their config declares none, so validation refuses one there
# (tests/test_runner_mcp.py checks that), though their code reveals the settings' secrets.
SECRETS_FROM_SETTINGS = frozenset({"mcp"})


def test_each_runners_secret_fields_are_fields_of_its_config_and_it_reveals_them() -> None:
    for type_name, runner in discover().items():
        model = runner.config_model
        written = {info.alias or name for name, info in model.model_fields.items()}
        assert runner.secret_fields <= written, type_name
        # a type that declares none has no code that could reveal one
        module = inspect.getmodule(runner)
        assert module is not None
        folder = Path(module.__file__ or "").parent
        sources = [inspect.getsource(module)]
        if folder.name != "runners":  # a runner with a package of its own (the browser's)
            sources += [path.read_text(encoding="utf-8") for path in folder.glob("*.py")]
        reveals = any("reveal" in source for source in sources)
        if type_name in SECRETS_FROM_SETTINGS:
            assert not runner.secret_fields, type_name
            continue
        assert bool(runner.secret_fields) == reveals, type_name


def test_a_zero_time_limit_a_two_line_user_agent_or_a_bad_session_name_is_refused(
    tmp_path: Path,
) -> None:
    # Playwright takes a timeout of 0 as no limit (a step could wait for ever); an http or mcp
    # timeout of 0 fails every call at once
    document = tmp_path / "zero.yaml"
    document.write_text(
        "tasks:\n"
        "  - {id: h, type: http, config: {url: 'http://127.0.0.1:1/', timeout: 0}}\n"
        "  - {id: m, type: mcp, config: {server: s, tool: t, timeout: 0s}}\n"
        "  - id: b\n    type: browser\n    config:\n"
        "      url: http://127.0.0.1:1/\n      step_timeout: 0\n      navigation_timeout: 0\n"
        "      steps: [{click: {selector: a, timeout: 0}}]\n"
        "  - {id: ua, type: browser,\n"
        "     config: {url: 'http://127.0.0.1:1/', user_agent: \"a\\r\\nb\", session: ../s}}\n",
        encoding="utf-8",
    )
    checked = cli(tmp_path / "home", "validate", document)
    assert checked.code == 2, checked.stdout
    for where in (
        "tasks[0].config.timeout",
        "tasks[1].config.timeout",
        "tasks[2].config.step_timeout",
        "tasks[2].config.navigation_timeout",
        "tasks[2].config.steps[0].click.timeout",
    ):
        assert f"{where}: Input should be greater than 0" in checked.stderr, checked.stderr
    # Chromium refused it when the page opened, as a raw protocol error
    assert "tasks[3].config.user_agent: user_agent holds a line break" in checked.stderr
    # a session names a vault secret: the bare pattern it must match was the whole message
    assert "tasks[3].config.session: '../s' is not a session name" in checked.stderr


def test_an_object_as_a_query_or_form_value_is_one_clear_error(tmp_path: Path) -> None:
    document = tmp_path / "values.yaml"
    document.write_text(
        "tasks:\n"
        "  - {id: q, type: http, config: {url: 'http://127.0.0.1:1/', params: {a: {b: 1}}}}\n"
        "  - {id: f, type: http, config: {method: POST, url: 'http://127.0.0.1:1/', "
        "form: {a: [1]}}}\n"
        "  - {id: n, type: http, config: {method: POST, url: 'http://127.0.0.1:1/', "
        "headers: {Content-Length: '5'}, json: {a: 123456}}}\n",
        encoding="utf-8",
    )
    checked = cli(tmp_path / "home", "validate", document)
    assert checked.code == 2, checked.stdout
    lines = [line for line in checked.stderr.splitlines() if "tasks[" in line]
    assert len(lines) == 3, checked.stderr  # one per value, not one per type it may have
    # a Content-Length of the document's own failed the request with h11's LocalProtocolError
    assert "tasks[2].config.headers: 'Content-Length' cannot be set" in lines[2]
    assert (
        "tasks[0].config.params.a: a query value is text, a number, true, false, null or a "
        "list of them, not an object" in lines[0]
    )
    assert (
        "tasks[1].config.form.a: a form value is text, a number, true, false or null, not "
        "a list" in lines[1]
    )
