"""The ``email`` task type through ``orchestrator run``, against real mail servers started here
on 127.0.0.1: ``aiosmtpd`` receives what is sent, ``pymap`` (its in-memory backend) serves IMAP.

The password is a canary in the vault, bound to 127.0.0.1: each test checks that it reached the
server only where it should, and that it is in no file of the data folder nor in any answer.
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cli_process import cli, home_with_secrets

PASSWORD = "canary-mail-5b1e9d07c3a2f846"
USER = "demouser"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Inbox:
    """An aiosmtpd handler that keeps what it receives, and the logins it was offered."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append((login, password))
        return AuthResult(success=(login, password) == (USER, PASSWORD), handled=False)


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=inbox.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def imap_port() -> Iterator[int]:
    """pymap's in-memory server (its demo mailbox, the canary as the password), plus one
    unread message with an attachment."""
    port = free_port()
    pymap = Path(sys.executable).parent / "pymap"
    process = subprocess.Popen(
        [
            *(str(pymap), "--host", "127.0.0.1", "--port", str(port), "--no-tls"),
            *("--no-service", "admin", "dict", "--demo-data", "--demo-password", PASSWORD),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                client = imaplib.IMAP4("127.0.0.1", port)
                break
            except OSError:
                assert time.monotonic() < deadline, "pymap did not start"
                time.sleep(0.1)
        client.login(USER, PASSWORD)
        message = EmailMessage()
        message["From"] = "alerts@example.org"
        message["To"] = "demouser@example.org"
        message["Subject"] = "Nightly export"
        message.set_content("The export is attached.")
        message.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", filename="export.csv")
        client.append("INBOX", "", imaplib.Time2Internaldate(time.time()), message.as_bytes())
        client.logout()
        yield port
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return home_with_secrets(tmp_path / "home", MAIL_PASSWORD=PASSWORD)


def mail_task(task_id: str, port: int, **config: Any) -> str:
    settings = {
        "host": "127.0.0.1",
        "port": port,
        "security": "plain",
        "username": USER,
        "password": "${vault.MAIL_PASSWORD}",
        **config,
    }
    return "  - " + json.dumps({"id": task_id, "type": "email", "config": settings})


def run(home: Path, *tasks: str, **env: str) -> tuple[dict[str, Any], str]:
    path = home.parent / "mail.yaml"
    path.write_text("name: Mail\ntasks:\n" + "\n".join(tasks) + "\n", encoding="utf-8")
    done = cli(home, "run", path, "--json", timeout=120, **env)
    return json.loads(done.stdout), done.stdout + done.stderr


def task(results: dict[str, Any], task_id: str) -> dict[str, Any]:
    found: dict[str, Any] = results["tasks"][task_id]
    return found


def assert_password_nowhere(home: Path, shown: str) -> None:
    """The canary is in no file of the data folder (the vault holds it encrypted) nor in what
    the CLI printed."""
    assert PASSWORD not in shown
    for path in (p for p in home.rglob("*") if p.is_file()):
        assert PASSWORD.encode() not in path.read_bytes(), f"the password is in {path}"


def test_a_mail_with_an_attachment_reaches_the_smtp_server(
    home: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    workspace = home / "workspace"
    (workspace / "out").mkdir(parents=True)
    (workspace / "out" / "report.csv").write_bytes(b"name,total\nalpha,3\n")
    sent = mail_task(
        "send",
        port,
        action="send",
        **{"from": "reports@example.org"},
        to=["team@example.org"],
        bcc=["audit@example.org"],
        subject="Daily report",
        text="The report is attached.",
        html="<p>The report is <b>attached</b>.</p>",
        attachments=["out/report.csv"],
    )
    results, shown = run(home, sent)

    send = task(results, "send")
    assert send["state"] == "succeeded", send
    assert send["output"]["accepted"] == ["team@example.org", "audit@example.org"]
    assert inbox.logins == [(USER, PASSWORD)]
    [(sender, recipients, content)] = inbox.messages
    assert sender == "reports@example.org"
    assert recipients == ["team@example.org", "audit@example.org"]
    received = email.message_from_bytes(content, policy=email.policy.default)
    assert received["Subject"] == "Daily report" and received["Bcc"] is None
    [attachment] = list(received.iter_attachments())
    assert attachment.get_filename() == "report.csv"
    assert attachment.get_content() == "name,total\nalpha,3\n"
    assert_password_nowhere(home, shown)


def test_an_attachment_outside_the_workspace_is_refused(
    home: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    sent = mail_task(
        "send",
        port,
        action="send",
        **{"from": "a@example.org"},
        to=["b@example.org"],
        text="hi",
        attachments=["../vault.db"],
    )
    # a folder to save attachments in that leaves the workspace is refused before connecting,
    # whether or not a message has one (port 1: nothing listens there)
    save = mail_task("save", 1, action="search", save_attachments="../mail")
    results, _ = run(home, sent, save)
    send = task(results, "send")
    assert send["state"] == "failed" and "'..' is not allowed" in send["error"], send
    assert inbox.messages == [] and inbox.logins == []
    saved = task(results, "save")
    assert (saved["error_class"], saved["error"][:45]) == (
        "config",
        "refused save_attachments folder '../mail': '.",
    ), saved


def test_imap_search_fetch_count_and_mark(home: Path, imap_port: int) -> None:
    criteria = {"from": "alerts@example.org", "unseen": True}
    before = mail_task("before", imap_port, action="count", criteria=criteria)
    search = mail_task(
        "search", imap_port, action="search", criteria=criteria, save_attachments="mail"
    )
    uids = {"uids": "${search.output.messages[*].uid}"}
    mark = mail_task("mark", imap_port, action="mark", criteria=uids, set="seen")
    after = mail_task("after", imap_port, action="count", criteria=criteria)
    results, shown = run(
        home,
        before,
        search.replace('"config"', '"dependencies": ["before"], "config"'),
        mark.replace('"config"', '"dependencies": ["search"], "config"'),
        after.replace('"config"', '"dependencies": ["mark"], "config"'),
    )

    counted = task(results, "before")["output"]
    assert counted["matching"] == 1, results
    found = task(results, "search")["output"]
    assert found["count"] == 1, found
    [message] = found["messages"]
    assert message["subject"] == "Nightly export" and message["from"] == "alerts@example.org"
    assert "The export is attached." in message["text"]
    [attachment] = message["attachments"]
    assert attachment["path"] == f"mail/{message['uid']}/export.csv"
    assert (home / "workspace" / attachment["path"]).read_bytes() == b"a,b\n1,2\n"
    assert "\\Seen" not in message["flags"]

    assert task(results, "mark")["output"]["uids"] == [message["uid"]], results
    later = task(results, "after")["output"]
    assert later["matching"] == 0 and later["unseen"] == counted["unseen"] - 1, later
    assert_password_nowhere(home, shown)


def test_a_search_beyond_ascii_and_a_mark_of_no_message(home: Path, imap_port: int) -> None:
    # a criterion beyond ASCII is searched as UTF-8; marking what a search that found nothing
    # gave (uids: []) marks nothing, where the server was sent a search it refused
    client = imaplib.IMAP4("127.0.0.1", imap_port)
    client.login(USER, PASSWORD)
    message = EmailMessage()
    message["From"] = "büro@example.org"
    message["Subject"] = "Prüfung bestanden 🎉"
    message.set_content("Glückwunsch")
    client.append("INBOX", "", imaplib.Time2Internaldate(time.time()), message.as_bytes())
    client.logout()
    found = mail_task("found", imap_port, action="search", criteria={"subject": "Prüfung"})
    none = mail_task("none", imap_port, action="search", criteria={"subject": "Größe"})
    uids = {"uids": "${none.output.messages[*].uid}"}
    mark = mail_task("mark", imap_port, action="mark", criteria=uids, set="flagged")
    results, shown = run(
        home, found, none, mark.replace('"config"', '"dependencies": ["none"], "config"')
    )
    [message_found] = task(results, "found")["output"]["messages"]
    assert message_found["subject"] == "Prüfung bestanden 🎉", results
    assert task(results, "none")["output"]["count"] == 0, results
    assert task(results, "mark")["output"] == {"folder": "INBOX", "marked": "flagged", "uids": []}
    assert_password_nowhere(home, shown)


def test_a_body_is_masked_before_it_is_cut(home: Path, imap_port: int) -> None:
    # a mail that quotes the password, cut by ORCHESTRATOR_EMAIL_MAX_BODY_CHARS inside it: the
    # body is masked first, so no piece of the password is left
    client = imaplib.IMAP4("127.0.0.1", imap_port)
    client.login(USER, PASSWORD)
    message = EmailMessage()
    message["From"] = "it@example.org"
    message["Subject"] = "Your password"
    message.set_content(f"It is: {PASSWORD}")
    client.append("INBOX", "", imaplib.Time2Internaldate(time.time()), message.as_bytes())
    client.logout()
    criteria = {"from": "it@example.org"}
    search = mail_task("search", imap_port, action="search", criteria=criteria, bodies=True)
    results, shown = run(home, search, ORCHESTRATOR_EMAIL_MAX_BODY_CHARS="14")
    [found] = task(results, "search")["output"]["messages"]
    assert found["text"].strip() == "It is: ***", found
    assert PASSWORD[:6] not in shown
    assert_password_nowhere(home, shown)


def test_a_line_break_in_a_header_is_refused(home: Path, smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    sent = mail_task(
        "send",
        port,
        action="send",
        **{"from": "a@example.org"},
        to="b@example.org",
        subject="Hello\r\nBcc: victim@example.org",
        text="hi",
    )
    results, _ = run(home, sent)
    send = task(results, "send")
    assert send["state"] == "failed" and send["error_class"] == "config", send
    assert inbox.messages == [] and inbox.logins == []


def test_an_address_or_uid_that_is_not_one_is_a_validation_error(home: Path) -> None:
    # 'a, b' as one entry reached the server as the envelope's first address only, while the
    # output said it was accepted whole; 'not an address' was sent from 'not'
    document = home.parent / "addresses.yaml"
    send = mail_task(
        "send",
        25,
        action="send",
        **{"from": "not an address"},
        to=["ops@example.com, evil@example.org", "Bo Ek <bo@example.com>"],
        text="hi",
    )
    # a UID written as a number is one; anything but a UID or a span never reaches the search
    uids = {"uids": [101, "1) OR (ALL"]}
    search = mail_task("search", 143, action="search", criteria=uids)
    document.write_text("tasks:\n" + send + "\n" + search + "\n", encoding="utf-8")
    checked = cli(home, "validate", document)
    assert "criteria.uids[0]" not in checked.stderr
    assert "criteria.uids[1]: '1) OR (ALL' is not a message UID" in checked.stderr
    assert checked.code == 2, checked.stdout
    assert "config.from: 'not an address' is not one email address" in checked.stderr
    assert "config.to: 'ops@example.com, evil@example.org' is not one email address" in (
        checked.stderr
    )
    assert "Bo Ek" not in checked.stderr  # a name and an address is one address


def test_a_wrong_password_fails_with_auth(
    tmp_path: Path, smtp_server: tuple[Inbox, int], imap_port: int
) -> None:
    home = home_with_secrets(tmp_path / "home", MAIL_PASSWORD="not-" + PASSWORD)
    _, smtp_port = smtp_server
    sent = mail_task(
        "send", smtp_port, action="send", **{"from": "a@x.org"}, to=["b@x.org"], text="hi"
    )
    counted = mail_task("count", imap_port, action="count")
    results, shown = run(home, sent, counted)
    for task_id in ("send", "count"):
        failed = task(results, task_id)
        assert failed["state"] == "failed" and failed["error_class"] == "auth", failed["error"]
    assert "not-" + PASSWORD not in shown


def test_a_host_the_policy_refuses_gets_no_connection(
    home: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    sent = mail_task("send", port, action="send", **{"from": "a@x.org"}, to=["b@x.org"], text="hi")
    results, shown = run(home, sent, ORCHESTRATOR_NET_DENY='["127.0.0.1"]')
    send = task(results, "send")
    assert send["state"] == "failed" and send["error_class"] == "policy", send
    assert inbox.logins == [] and inbox.messages == []
    assert_password_nowhere(home, shown)


def test_a_host_the_password_is_not_bound_to_gets_nothing(
    home: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    sent = mail_task("send", port, action="send", **{"from": "a@x.org"}, to=["b@x.org"], text="hi")
    results, shown = run(home, sent.replace("127.0.0.1", "localhost"))
    send = task(results, "send")
    assert send["state"] == "failed" and "MAIL_PASSWORD" in send["error"], send
    assert inbox.logins == [] and inbox.messages == []
    assert_password_nowhere(home, shown)


def test_starttls_the_server_does_not_offer_sends_no_password(
    home: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    sent = mail_task("send", port, action="send", **{"from": "a@x.org"}, to="b@x.org", text="hi")
    results, shown = run(home, sent.replace('"plain"', '"starttls"'))
    send = task(results, "send")
    assert send["state"] == "failed" and send["error_class"] == "smtp", send
    assert "STARTTLS" in send["error"], send
    assert inbox.logins == [] and inbox.messages == []
    assert_password_nowhere(home, shown)


def local_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_plain_text_off_loopback_is_refused_before_connecting(home: Path) -> None:
    address = local_address()
    if address is None:
        pytest.skip("this machine has no address besides loopback")
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname=address, port=port, auth_require_tls=False)
    controller.start()
    try:
        sent = mail_task(
            "send", port, action="send", **{"from": "a@x.org"}, to="b@x.org", text="hi"
        )
        results, shown = run(home, sent.replace("127.0.0.1", address))
    finally:
        controller.stop()
    send = task(results, "send")
    assert send["state"] == "failed" and send["error_class"] == "policy", send
    assert "not a loopback address" in send["error"]
    assert inbox.messages == [] and inbox.logins == []
    assert_password_nowhere(home, shown)


def test_a_password_written_into_the_document_is_refused_at_validation(home: Path) -> None:
    path = home.parent / "leaky.yaml"
    literal = mail_task("count", 143, action="count").replace(
        "${vault.MAIL_PASSWORD}", "hunter2-literal-mail"
    )
    path.write_text("name: Mail\ntasks:\n" + literal + "\n", encoding="utf-8")
    done = cli(home, "validate", path)
    shown = done.stdout + done.stderr
    assert done.code != 0
    assert "password must be a ${vault.NAME} reference" in shown
    assert "hunter2-literal-mail" not in shown


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no authority signed, and its key."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_with_a_certificate_no_authority_signed_sends_no_password(
    home: Path, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox, port = Inbox(), free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        ssl_context=context,
        authenticator=inbox.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        sent = mail_task(
            "send", port, action="send", **{"from": "a@x.org"}, to="b@x.org", text="hi"
        )
        results, shown = run(home, sent.replace('"plain"', '"tls"'))
    finally:
        controller.stop()
    send = task(results, "send")
    assert send["state"] == "failed" and send["error_class"] == "network", send
    assert "certificate" in send["error"].lower(), send
    assert inbox.logins == [] and inbox.messages == []
    assert_password_nowhere(home, shown)
