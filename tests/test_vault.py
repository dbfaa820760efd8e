"""The vault on real files: key sources, damage detection, locking, rotation, hosts, redaction.

Passphrase tests lower scrypt's cost through ``kdf_cost`` so the file stays fast; one test checks
that the default is the real cost.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest
from cryptography.fernet import Fernet

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.vault import (
    Redactor,
    Vault,
    VaultError,
    VaultResolver,
    host_allowed,
    store,
)
from multi_task_orchestrator.vault.keys import (
    KEY_ENV,
    PASSPHRASE_ENV,
    SCRYPT_LOG2_N,
    KeyFile,
    ScryptParams,
)
from multi_task_orchestrator.vault.store import MAX_VALUE_BYTES

REPO = Path(__file__).resolve().parent.parent
LOW_COST = 10  # scrypt n = 2**10 in tests
CANARY = "canary-5f1d0c2e-Zq"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "vault.db"


def open_with(path: Path, source: str, **extra: str) -> Vault:
    """Open ``path`` with one of the three key sources."""
    if source == "key":
        return Vault.open(path, key=extra.get("key", KEY))
    if source == "passphrase":
        return Vault.open(path, passphrase=extra.get("passphrase", "hunter2"), kdf_cost=LOW_COST)
    return Vault.open(path)


KEY = Fernet.generate_key().decode()
SOURCES = ["key", "passphrase", "key_file"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- key sources --------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_round_trip_through_each_key_source(path: Path, source: str) -> None:
    vault = open_with(path, source)
    vault.set("API_TOKEN", CANARY, allowed_hosts=["api.example.com"], description="the API")
    vault.close()

    reopened = open_with(path, source)
    assert reopened.reveal("API_TOKEN", "api.example.com") == CANARY
    [info] = reopened.list()
    assert (info.name, info.description, info.allowed_hosts) == (
        "API_TOKEN",
        "the API",
        ["api.example.com"],
    )
    assert CANARY.encode() not in path.read_bytes()
    assert b"API_TOKEN" not in path.read_bytes()  # names are encrypted too
    assert (path.parent / "vault.key").exists() is (source == "key_file")


@pytest.mark.parametrize(
    ("source", "key_source"),
    [("key", KEY_ENV), ("passphrase", PASSPHRASE_ENV), ("key_file", "the key file")],
)
def test_key_source_is_named(path: Path, source: str, key_source: str) -> None:
    assert open_with(path, source).key_source.startswith(key_source)


def test_wrong_key_names_the_source_and_leaves_the_file(path: Path) -> None:
    open_with(path, "key").set("A", CANARY, allowed_hosts=["*"])
    before = path.read_bytes()
    with pytest.raises(VaultError) as caught:
        Vault.open(path, key=Fernet.generate_key().decode())
    assert str(caught.value) == (
        f"cannot unlock {path} with ORCHESTRATOR_VAULT_KEY: wrong key or a different vault. "
        "The vault file was left as it is."
    )
    assert path.read_bytes() == before


def test_wrong_passphrase_names_the_source_and_leaves_the_file(path: Path) -> None:
    open_with(path, "passphrase").set("A", CANARY, allowed_hosts=["*"])
    before = path.read_bytes()
    with pytest.raises(VaultError) as caught:
        open_with(path, "passphrase", passphrase="hunter3")
    assert str(caught.value) == (
        f"cannot unlock {path} with ORCHESTRATOR_VAULT_PASSPHRASE: wrong passphrase or a "
        "different vault. The vault file was left as it is."
    )
    assert path.read_bytes() == before


def test_wrong_key_file_names_the_file(path: Path) -> None:
    open_with(path, "key_file").set("A", CANARY, allowed_hosts=["*"])
    before = path.read_bytes()
    KeyFile(path.parent / "vault.key").write([Fernet.generate_key()])
    with pytest.raises(VaultError, match=r"with the key file .*vault.key: wrong key"):
        Vault.open(path)
    assert path.read_bytes() == before


def test_a_missing_key_file_is_not_replaced(path: Path) -> None:
    open_with(path, "key_file").set("A", CANARY, allowed_hosts=["*"])
    (path.parent / "vault.key").unlink()
    with pytest.raises(VaultError, match=r"vault.key is missing.*restore it from a backup"):
        Vault.open(path)
    assert not (path.parent / "vault.key").exists()


def test_a_passphrase_vault_asks_for_the_passphrase(path: Path) -> None:
    open_with(path, "passphrase")
    with pytest.raises(VaultError) as caught:
        Vault.open(path)
    assert str(caught.value) == (
        f"cannot unlock {path}: this vault is locked with a passphrase; set "
        "ORCHESTRATOR_VAULT_PASSPHRASE"
    )
    assert not (path.parent / "vault.key").exists()


def test_a_key_vault_refuses_a_passphrase(path: Path) -> None:
    open_with(path, "key_file")
    with pytest.raises(VaultError, match=r"locked with a key .* not a passphrase"):
        Vault.open(path, passphrase="hunter2")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"key": "not-a-key"}, "ORCHESTRATOR_VAULT_KEY is not a Fernet key"),
        ({"key": " "}, "ORCHESTRATOR_VAULT_KEY is set but empty"),
        ({"passphrase": ""}, "ORCHESTRATOR_VAULT_PASSPHRASE is set but empty"),
    ],
)
def test_unusable_key_settings(path: Path, options: dict[str, str], message: str) -> None:
    with pytest.raises(VaultError, match=message):
        Vault.open(path, **options)
    assert not path.exists()


def test_the_default_scrypt_cost_is_the_real_one() -> None:
    params = ScryptParams.new()
    assert (params.n, params.r, params.p, len(params.salt)) == (2**17, 8, 1, 16)
    assert SCRYPT_LOG2_N == 17


def test_the_header_holds_the_kdf_parameters(path: Path) -> None:
    open_with(path, "passphrase")
    header = json.loads(path.read_bytes().split(b"\n")[0])
    assert header["format"] == "mto-vault"
    assert header["version"] == 1
    assert header["kdf"]["name"] == "scrypt"
    assert (header["kdf"]["n"], header["kdf"]["r"], header["kdf"]["p"]) == (2**LOW_COST, 8, 1)
    assert len(base64.b64decode(header["kdf"]["salt"])) == 16


# --- damage -------------------------------------------------------------------------------


def _flip_body_byte(data: bytes) -> bytes:
    position = data.index(b"\n") + 40
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


def _modify_header(data: bytes) -> bytes:
    header, _, body = data.partition(b"\n")
    fields = json.loads(header)
    fields["comment"] = "edited"
    return json.dumps(fields).encode() + b"\n" + body


@pytest.mark.parametrize(
    "damage",
    [
        _flip_body_byte,
        _modify_header,
        lambda data: data[: len(data) // 2],  # truncated in the body
        lambda data: data[:30],  # truncated in the header
        lambda data: data[: data.index(b"\n") + 1],  # no body at all
        lambda data: b"",
    ],
    ids=["flipped-byte", "modified-header", "truncated", "truncated-header", "no-body", "empty"],
)
@pytest.mark.parametrize("source", ["key", "passphrase"])
def test_a_damaged_file_is_reported_and_left_alone(
    path: Path, source: str, damage: Callable[[bytes], bytes]
) -> None:
    open_with(path, source).set("A", CANARY, allowed_hosts=["*"])
    damaged = damage(path.read_bytes())
    path.write_bytes(damaged)
    with pytest.raises(VaultError) as caught:
        open_with(path, source)
    assert str(caught.value) == (
        f"the vault file {path} is damaged or was modified (its integrity check failed); "
        "restore it from a backup. It was left as it is."
    )
    assert path.read_bytes() == damaged


def test_damage_under_an_open_vault_stops_writes(path: Path) -> None:
    vault = open_with(path, "key")
    vault.set("A", CANARY, allowed_hosts=["*"])
    damaged = _flip_body_byte(path.read_bytes())
    path.write_bytes(damaged)
    with pytest.raises(VaultError, match="is damaged or was modified"):
        vault.set("B", "another value", allowed_hosts=["*"])
    assert path.read_bytes() == damaged


def test_a_file_that_is_not_a_vault(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text("hello\n")
    with pytest.raises(VaultError, match=r"is not a vault file, or its header is damaged"):
        Vault.open(path)
    assert path.read_text() == "hello\n"


# --- files and processes ------------------------------------------------------------------


def test_files_are_private(path: Path) -> None:
    vault = Vault.open(path)
    vault.set("A", CANARY, allowed_hosts=["*"])
    assert mode(path) == 0o600
    assert mode(path.parent / "vault.key") == 0o600
    assert mode(path.parent / "vault.db.lock") == 0o600
    vault.rotate()
    assert mode(path) == 0o600
    assert mode(path.parent / "vault.key") == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from multi_task_orchestrator.vault import Vault
    path, key, prefix, ready, go = sys.argv[1:]
    vault = Vault.open(path, key=key)
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.001)
    for index in range(100):
        vault.set(f"{prefix}_{index}", f"value-{prefix}-{index}", allowed_hosts=["example.com"])
    """
)


def test_two_processes_each_set_100_secrets(path: Path, tmp_path: Path) -> None:
    Vault.open(path, key=KEY)
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), KEY, prefix, str(tmp_path / prefix), str(go)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        for prefix in ("first", "second")
    ]
    deadline = time.monotonic() + 30
    while not all((tmp_path / prefix).exists() for prefix in ("first", "second")):
        assert time.monotonic() < deadline, "the writers did not start"
        time.sleep(0.005)
    go.touch()
    assert [child.wait(timeout=60) for child in children] == [0, 0]

    vault = Vault.open(path, key=KEY)
    expected = {f"{prefix}_{index}" for prefix in ("first", "second") for index in range(100)}
    assert vault.names() == expected
    assert vault.reveal("second_99", "example.com") == "value-second-99"


def test_another_instance_sees_changes(path: Path) -> None:
    first, second = Vault.open(path), Vault.open(path)
    first.set("A", CANARY, allowed_hosts=["*"])
    assert second.names() == {"A"}
    second.set("B", "value-b", allowed_hosts=["*"])
    first.delete("A")
    assert second.names() == {"B"}
    assert [info.name for info in first.list()] == ["B"]


def test_last_used_is_kept_in_memory_until_close(path: Path) -> None:
    vault = Vault.open(path)
    vault.set("A", CANARY, allowed_hosts=["*"])
    before = path.read_bytes()
    for _ in range(5):
        vault.reveal("A", "example.com")
    assert path.read_bytes() == before  # a use does not rewrite the file
    assert vault.list()[0].last_used_at is not None
    assert Vault.open(path).list()[0].last_used_at is None
    vault.close()
    assert Vault.open(path).list()[0].last_used_at == vault.list()[0].last_used_at


def test_last_used_is_written_in_batches(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "USAGE_FLUSH_SECONDS", 0.0)
    vault = Vault.open(path)
    vault.set("A", CANARY, allowed_hosts=["*"])
    before = path.read_bytes()
    vault.reveal("A", "example.com")  # starts a batch
    assert path.read_bytes() == before
    vault.reveal("A", "example.com")  # the batch is older than the (lowered) interval
    assert path.read_bytes() != before
    assert Vault.open(path).list()[0].last_used_at is not None


def test_a_removed_vault_file_is_an_error(path: Path) -> None:
    vault = Vault.open(path)
    vault.set("A", CANARY, allowed_hosts=["*"])
    path.unlink()
    with pytest.raises(VaultError, match=r"vault.db was removed while in use; restore it"):
        vault.reveal("A", "example.com")
    with pytest.raises(VaultError, match=r"vault.db was removed while in use; restore it"):
        vault.set("B", "value-b", allowed_hosts=["*"])
    assert not path.exists()


# --- rotation -----------------------------------------------------------------------------


def test_rotate_the_key_file(path: Path) -> None:
    vault = Vault.open(path)
    vault.set("A", CANARY, allowed_hosts=["*"])
    old = KeyFile(path.parent / "vault.key").read()
    vault.rotate()
    new = KeyFile(path.parent / "vault.key").read()
    assert len(new) == 1 and new != old
    assert Vault.open(path).reveal("A", "example.com") == CANARY
    with pytest.raises(VaultError, match="wrong key"):
        Vault.open(path, key=old[0].decode())


def test_rotate_a_passphrase(path: Path) -> None:
    vault = open_with(path, "passphrase")
    vault.set("A", CANARY, allowed_hosts=["*"])
    salt = json.loads(path.read_bytes().split(b"\n")[0])["kdf"]["salt"]
    vault.rotate()  # same passphrase, new salt
    assert json.loads(path.read_bytes().split(b"\n")[0])["kdf"]["salt"] != salt
    assert open_with(path, "passphrase").reveal("A", "example.com") == CANARY

    vault.rotate(new_passphrase="correct horse")
    assert open_with(path, "passphrase", passphrase="correct horse").names() == {"A"}
    with pytest.raises(VaultError, match="wrong passphrase"):
        open_with(path, "passphrase")


def test_rotate_a_given_key(path: Path) -> None:
    vault = open_with(path, "key")
    vault.set("A", CANARY, allowed_hosts=["*"])
    with pytest.raises(VaultError, match="rotating needs the new key"):
        vault.rotate()
    new_key = Fernet.generate_key().decode()
    vault.rotate(new_key=new_key)
    assert Vault.open(path, key=new_key).reveal("A", "example.com") == CANARY
    with pytest.raises(VaultError, match="wrong key"):
        Vault.open(path, key=KEY)


def test_rotate_from_the_key_file_to_a_passphrase(path: Path) -> None:
    vault = Vault.open(path, kdf_cost=LOW_COST)
    vault.set("A", CANARY, allowed_hosts=["*"])
    vault.rotate(new_passphrase="correct horse")
    assert not (path.parent / "vault.key").exists()
    assert open_with(path, "passphrase", passphrase="correct horse").names() == {"A"}


def test_an_interrupted_key_file_rotation_still_reads(path: Path) -> None:
    vault = Vault.open(path)
    vault.set("A", CANARY, allowed_hosts=["*"])
    key_file = KeyFile(path.parent / "vault.key")
    old = key_file.read()
    new = Fernet.generate_key()

    key_file.write([new, *old])  # step 1 only: the vault is still under the old key
    reopened = Vault.open(path)
    assert reopened.reveal("A", "example.com") == CANARY

    # Step 2 without step 3: a write encrypts with the newest key; the old one stays listed.
    reopened.set("B", "value-b", allowed_hosts=["*"])
    assert Vault.open(path, key=new.decode()).names() == {"A", "B"}
    assert Vault.open(path).reveal("B", "example.com") == "value-b"

    # The next rotation finishes the job.
    Vault.open(path).rotate()
    assert len(key_file.read()) == 1
    assert Vault.open(path).names() == {"A", "B"}


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a b", "1abc", "", "x" * 129, "naïve", "a/b", "${x}"])
def test_bad_names_are_refused(path: Path, name: str) -> None:
    with pytest.raises(VaultError, match=r"is not allowed: use 1-128 letters, digits"):
        Vault.open(path).set(name, CANARY, allowed_hosts=["*"])


@pytest.mark.parametrize("name", ["A", "_x", "api.token-2", "x" * 128])
def test_good_names(path: Path, name: str) -> None:
    assert Vault.open(path).set(name, CANARY, allowed_hosts=["*"]).name == name


def test_values_must_be_non_empty_and_at_most_64_kib(path: Path) -> None:
    vault = Vault.open(path)
    with pytest.raises(VaultError) as caught:
        vault.set("A", "", allowed_hosts=["*"])
    assert str(caught.value) == "secret 'A' has an empty value; give the value to store"
    with pytest.raises(VaultError) as caught:
        vault.set("A", "x" * (MAX_VALUE_BYTES + 1), allowed_hosts=["*"])
    assert str(caught.value) == (
        "secret 'A' is 65,537 bytes; a value may be at most 64 KiB (65,536 bytes)"
    )
    assert vault.set("A", "x" * MAX_VALUE_BYTES, allowed_hosts=["*"]).name == "A"


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        ([], "allowed hosts are required"),
        ([""], "an allowed host cannot be empty"),
        (["https://api.example.com"], "looks like a URL or path; give a host name only"),
        (["api.example.com/v1"], "looks like a URL or path; give a host name only"),
        (["api.example.com:443"], "has a port; give a host name only"),
        (["a*.example.com"], "a wildcard is only allowed as a whole first label"),
        (["exa mple.com"], "is not a host name"),
    ],
)
def test_bad_hosts_are_refused(path: Path, hosts: list[str], message: str) -> None:
    with pytest.raises(VaultError, match=message):
        Vault.open(path).set("A", CANARY, allowed_hosts=hosts)
    assert Vault.open(path).names() == set()


def test_hosts_are_normalised(path: Path) -> None:
    info = Vault.open(path).set(
        "A", CANARY, allowed_hosts=["API.Example.com.", "api.example.com", "127.0.0.1", "[::1]"]
    )
    assert info.allowed_hosts == ["api.example.com", "127.0.0.1", "::1"]


def test_unknown_names_get_a_suggestion(path: Path) -> None:
    vault = Vault.open(path)
    with pytest.raises(VaultError, match=r"^no secret named 'A' in the vault; the vault is empty$"):
        vault.delete("A")
    vault.set("API_TOKEN", CANARY, allowed_hosts=["*"])
    with pytest.raises(VaultError, match=r"no secret named 'API_TOKN'.*did you mean 'API_TOKEN'"):
        vault.delete("API_TOKN")
    with pytest.raises(VaultError, match=r"did you mean 'API_TOKEN'"):
        vault.reveal("API_TOKN", "example.com")


# --- hosts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "patterns", "allowed"),
    [
        ("api.example.com", ["api.example.com"], True),
        ("API.EXAMPLE.COM.", ["api.example.com"], True),
        ("other.example.com", ["api.example.com"], False),
        ("a.example.com", ["*.example.com"], True),
        ("a.b.example.com", ["*.example.com"], True),
        ("example.com", ["*.example.com"], False),
        ("badexample.com", ["*.example.com"], False),
        ("example.com.evil.net", ["*.example.com", "example.com"], False),
        ("anything.net", ["*"], True),
        ("127.0.0.1", ["localhost"], False),
        ("", ["*"], False),
    ],
)
def test_host_allowed(host: str, patterns: list[str], allowed: bool) -> None:
    assert host_allowed(host, patterns) is allowed


def test_a_refusal_names_secret_host_and_hosts_but_not_the_value(path: Path) -> None:
    vault = Vault.open(path)
    vault.set("API_TOKEN", CANARY, allowed_hosts=["api.example.com", "*.example.org"])
    assert vault.reveal("API_TOKEN", "x.example.org") == CANARY
    with pytest.raises(VaultError) as caught:
        vault.reveal("API_TOKEN", "example.org")
    assert str(caught.value) == (
        "secret 'API_TOKEN' may not be sent to host 'example.org': it is allowed only for "
        "api.example.com, *.example.org. If that host should receive it, store the secret "
        "again with the host in its allowed hosts"
    )
    with pytest.raises(VaultError, match="names no destination host") as caught:
        vault.reveal("API_TOKEN", None)
    assert CANARY not in str(caught.value)


def test_any_host_must_be_explicit(path: Path) -> None:
    vault = Vault.open(path)
    vault.set("OPEN", CANARY, allowed_hosts=["*"])
    assert vault.reveal("OPEN", "anywhere.net") == CANARY
    assert vault.reveal("OPEN", None) == CANARY


# --- resolver -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_resolver_reveals_refuses_and_redacts(path: Path) -> None:
    vault = Vault.open(path)
    vault.set("API_TOKEN", CANARY, allowed_hosts=["api.example.com"])
    resolver = VaultResolver(vault)
    assert await resolver.resolve("API_TOKEN", host="api.example.com") == CANARY
    assert resolver.names() == {"API_TOKEN"}
    assert resolver.redact(f"echo: Bearer {CANARY}") == "echo: Bearer ***"

    with pytest.raises(TaskError) as refused:
        await resolver.resolve("API_TOKEN", host="evil.net")
    assert refused.value.error_class == "config"
    assert "may not be sent to host 'evil.net'" in refused.value.message
    with pytest.raises(TaskError) as unknown:
        await resolver.resolve("API_TOKN", host="api.example.com")
    assert unknown.value.error_class == "config"
    assert "did you mean 'API_TOKEN'" in unknown.value.message

    # A value set by another process is masked once the vault is re-read; a revealed value
    # stays masked after it is deleted.
    Vault.open(path).set("OTHER", "other-secret-value", allowed_hosts=["*"])
    assert resolver.names() == {"API_TOKEN", "OTHER"}
    assert resolver.redact("a other-secret-value b") == "a *** b"
    vault.delete("API_TOKEN")
    assert resolver.redact(CANARY) == "***"

    await resolver.store("SESSION", "session-cookie-value", allowed_hosts=["app.example.com"])
    assert Vault.open(path).reveal("SESSION", "app.example.com") == "session-cookie-value"
    with pytest.raises(TaskError, match="cannot save secret 'bad name'"):
        await resolver.store("bad name", "v", allowed_hosts=["*"])


# --- redaction ----------------------------------------------------------------------------

ODD = 'p@ss/w:rd+&"x€ y'


@pytest.mark.parametrize(
    "encoded",
    [
        ODD,
        base64.b64encode(ODD.encode()).decode(),
        base64.b64encode(ODD.encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(ODD.encode()).decode(),
        base64.urlsafe_b64encode(ODD.encode()).decode().rstrip("="),
        quote(ODD),
        quote(ODD, safe=""),
        quote_plus(ODD),
        json.dumps(ODD)[1:-1],
        json.dumps(ODD, ensure_ascii=False)[1:-1],
        httpx.URL("http://h/" + ODD).raw_path.decode()[1:],  # some characters left as they are
        quote(ODD, safe="").lower(),  # %2f for %2F
        'p%40ss/w%3ard%2B&"x%E2%82%ac%20y',  # any mixture
        "p@ss/w:rd+&amp;&quot;x€ y",  # an HTML page quoting it
    ],
    ids=[
        "plain",
        "base64",
        "base64-unpadded",
        "urlsafe",
        "urlsafe-unpadded",
        "quote",
        "quote-all",
        "quote-plus",
        "json",
        "json-unicode",
        "httpx-path",
        "quote-lower-case",
        "mixed",
        "html",
    ],
)
def test_each_encoded_form_is_masked(encoded: str) -> None:
    assert Redactor([ODD]).redact(f"<{encoded}>") == "<***>"


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("u:", "dTpz***dWU="), ("us:", "dXM6***"), ("use:", "dXNlOnMz***ZQ==")],
)
def test_base64_inside_a_longer_text_is_masked(prefix: str, expected: str) -> None:
    """An HTTP Basic credential: the token sits inside base64 at each of the 3 alignments.

    What stays visible is the prefix and at most two bytes of the token at either end.
    """
    basic = base64.b64encode(f"{prefix}s3cr3t-t0ken-value".encode()).decode()
    redactor = Redactor(["s3cr3t-t0ken-value"])
    assert redactor.redact(f"Authorization: Basic {basic}") == f"Authorization: Basic {expected}"


def test_the_longest_value_wins() -> None:
    redactor = Redactor(["abcd", "abcdefgh"])
    assert redactor.redact("abcdefgh abcd") == "*** ***"


def test_short_values_are_masked_only_whole() -> None:
    redactor = Redactor(["ab1"])
    assert redactor.redact("ab1") == "***"
    assert redactor.redact("tab1e") == "tab1e"
    assert redactor.redact_data({"pin": "ab1", "note": "ab1 here"}) == {
        "pin": "***",
        "note": "ab1 here",
    }


def test_redact_data_walks_keys_lists_and_nesting() -> None:
    redactor = Redactor([CANARY])
    data = {CANARY: [1, None, {"x": f"Bearer {CANARY}"}, (CANARY,)], "n": 2.5, "ok": True}
    assert redactor.redact_data(data) == {
        "***": [1, None, {"x": "Bearer ***"}, ["***"]],
        "n": 2.5,
        "ok": True,
    }


def test_an_empty_redactor_changes_nothing() -> None:
    redactor = Redactor([])
    assert not redactor
    assert redactor.redact("text") == "text"
