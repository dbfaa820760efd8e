"""IMAP with ``imap-tools`` in a thread: search and fetch (headers, bodies, attachments saved
into the workspace), count, and mark seen or flagged, over a socket to the address the policy
admitted (``imaplib``'s socket is replaced by ``connect.blocking_socket``).

``imap-tools`` rather than ``aioimaplib``: it builds the search criteria, parses messages and
sets flags over the standard library's well-tested ``imaplib``, and a mail exchange is short
work that a thread holds without harm; ``aioimaplib`` would leave the parsing and the search
syntax to this module. Every call is bounded: ``limit`` messages, messages over the attachment
limit give their headers only, bodies cut to ``max_body_chars``.
"""

from __future__ import annotations

import imaplib
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from imap_tools import AND, BaseMailBox, MailMessage, MailMessageFlags
from imap_tools.errors import MailboxLoginError, UnexpectedCommandStatusError

from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.network import Destination
from multi_task_orchestrator.engine.runners.email.config import Criteria, EmailConfig
from multi_task_orchestrator.engine.runners.email.connect import (
    blocking_socket,
    redact,
    tls_context,
)
from multi_task_orchestrator.engine.runners.files.paths import inside, relative, under
from multi_task_orchestrator.engine.runners.workspace_fs import write_file

_FLAGS = {
    "seen": (MailMessageFlags.SEEN, True),
    "unseen": (MailMessageFlags.SEEN, False),
    "flagged": (MailMessageFlags.FLAGGED, True),
    "unflagged": (MailMessageFlags.FLAGGED, False),
}


def _client(config: EmailConfig, destination: Destination) -> imaplib.IMAP4:
    """An ``imaplib`` client connected to an admitted address, TLS checked for the host."""

    class Pinned(imaplib.IMAP4):
        def _create_socket(self, timeout: float | None) -> socket.socket:
            return blocking_socket(destination, config.timeout)

    class PinnedTls(imaplib.IMAP4_SSL, Pinned):
        pass

    if config.security == "tls":
        return PinnedTls(destination.host, destination.port, ssl_context=tls_context())
    client = Pinned(destination.host, destination.port, timeout=config.timeout)
    if config.security == "starttls":
        client.starttls(tls_context())
    return client


class _MailBox(BaseMailBox):
    def __init__(self, client: imaplib.IMAP4) -> None:
        self._given = client
        super().__init__()

    def _get_mailbox_client(self) -> imaplib.IMAP4:
        return self._given


@contextmanager
def _mailbox(
    config: EmailConfig, destination: Destination, password: str | None
) -> Iterator[BaseMailBox]:
    where = f"the IMAP server {destination.host}"
    try:
        box = _MailBox(_client(config, destination))
        try:
            box.login(config.username or "", password or "", initial_folder=config.folder)
        except MailboxLoginError:
            raise TaskError(f"{where} refused the login of {config.username}", "auth") from None
        try:
            yield box
        finally:
            with suppress(imaplib.IMAP4.error, OSError):
                box.logout()
    except TaskError:
        raise
    except TimeoutError:
        raise TaskError(f"{where} did not answer within {config.timeout:g} s", "timeout") from None
    except ssl.SSLError as exc:
        raise TaskError(f"TLS with {where} failed: {exc.reason}", "network") from None
    except (imaplib.IMAP4.abort, OSError) as exc:
        raise TaskError(
            f"the connection to {where} failed: {redact(str(exc), password)}", "network"
        ) from None
    except (imaplib.IMAP4.error, UnexpectedCommandStatusError) as exc:
        raise TaskError(f"{where} refused: {redact(str(exc), password)}", "imap") from None


def _search(criteria: Criteria) -> Any:
    given: dict[str, Any] = {}
    if criteria.sender is not None:
        given["from_"] = criteria.sender
    for name in ("to", "subject", "text", "flagged"):
        if getattr(criteria, name) is not None:
            given[name] = getattr(criteria, name)
    if criteria.since is not None:
        given["date_gte"] = criteria.since
    if criteria.before is not None:
        given["date_lt"] = criteria.before
    if criteria.unseen is not None:
        given["seen"] = not criteria.unseen
    if criteria.uids is not None:
        given["uid"] = criteria.uids
    return AND(**given) if given else AND(all=True)


def _charset(search: Any) -> str:
    """The search's charset: UTF-8 for a criterion beyond ASCII (every IMAP server takes it)."""
    return "US-ASCII" if str(search).isascii() else "UTF-8"


def _none_match(criteria: Criteria) -> bool:
    """An empty ``uids`` (say, of a search that found nothing) matches no message; it is not
    sent, as a search for no UID is a syntax error to the server."""
    return criteria.uids is not None and not criteria.uids


def _safe_name(name: str, number: int) -> str:
    cleaned = re.sub(r"[^\w.\- ]+", "_", Path(name.replace("\\", "/")).name).strip(" .")
    return cleaned[:120] or f"attachment-{number}"


def _describe(message: MailMessage) -> dict[str, Any]:
    return {
        "uid": message.uid,
        "from": message.from_,
        "to": list(message.to),
        "cc": list(message.cc),
        "subject": message.subject,
        "date": message.date.isoformat() if message.date.year > 1900 else message.date_str,
        "flags": list(message.flags),
        "size": message.size_rfc822,
    }


def search(
    config: EmailConfig,
    destination: Destination,
    password: str | None,
    root: Path | None,
    max_bytes: int,
    max_chars: int,
    redact: Callable[[str], str],
) -> dict[str, Any]:
    """The newest ``limit`` messages matching the criteria, newest first; bodies are masked
    with ``redact`` before they are cut to ``max_chars``, so no piece of a secret is left."""
    with _mailbox(config, destination, password) as box:
        criteria = _search(config.criteria)
        heads = (
            []
            if _none_match(config.criteria)
            else list(
                box.fetch(
                    criteria,
                    charset=_charset(criteria),
                    limit=config.limit,
                    reverse=True,
                    headers_only=True,
                    mark_seen=False,
                    bulk=True,
                )
            )
        )
        found = []
        for head in heads:
            entry = _describe(head)
            if head.size_rfc822 > max_bytes:
                entry["skipped"] = (
                    f"the message is {head.size_rfc822} bytes, more than "
                    f"ORCHESTRATOR_EMAIL_MAX_ATTACHMENT_BYTES ({max_bytes}); headers only"
                )
            elif head.uid and (config.bodies or config.save_attachments):
                full = next(iter(box.fetch(AND(uid=[head.uid]), mark_seen=False)), None)
                if full is not None:
                    entry.update(_contents(config, full, root, max_chars, redact))
            found.append(entry)
        if config.mark_seen and heads:
            box.flag([head.uid for head in heads if head.uid], MailMessageFlags.SEEN, True)
    return {"folder": config.folder, "count": len(found), "messages": found}


def _contents(
    config: EmailConfig,
    message: MailMessage,
    root: Path | None,
    max_chars: int,
    redact: Callable[[str], str],
) -> dict[str, Any]:
    contents: dict[str, Any] = {}
    if config.bodies:
        contents["text"] = redact(message.text)[:max_chars]
        contents["html"] = redact(message.html)[:max_chars]
    attachments = []
    for number, part in enumerate(message.attachments, start=1):
        item: dict[str, Any] = {
            "filename": part.filename,
            "content_type": part.content_type,
            "size": part.size,
        }
        if config.save_attachments is not None:
            if root is None:
                raise TaskError("no workspace folder is configured (set ORCHESTRATOR_WORKSPACE)")
            name = _safe_name(part.filename, number)
            path = inside(root, f"{config.save_attachments}/{message.uid}/{name}", "attachment")
            write_file(str(root), under(root, path), part.payload, f"'{relative(root, path)}'")
            item["path"] = relative(root, path)
        attachments.append(item)
    contents["attachments"] = attachments
    return contents


def count(config: EmailConfig, destination: Destination, password: str | None) -> dict[str, Any]:
    """The folder's messages and unread messages, and those matching criteria when given."""
    with _mailbox(config, destination, password) as box:
        status = box.folder.status(config.folder, ["MESSAGES", "UNSEEN"])
        result: dict[str, Any] = {
            "folder": config.folder,
            "messages": status.get("MESSAGES", 0),
            "unseen": status.get("UNSEEN", 0),
        }
        if config.criteria.model_fields_set:
            result["matching"] = len(_uids(box, config.criteria))
    return result


def mark(config: EmailConfig, destination: Destination, password: str | None) -> dict[str, Any]:
    """Set or clear a flag on the newest ``limit`` matching messages."""
    assert config.set is not None
    flag, value = _FLAGS[config.set]
    with _mailbox(config, destination, password) as box:
        uids = _uids(box, config.criteria)[-config.limit :]
        if uids:
            box.flag(uids, flag, value)
    return {"folder": config.folder, "marked": config.set, "uids": uids}


def _uids(box: BaseMailBox, criteria: Criteria) -> list[str]:
    if _none_match(criteria):
        return []
    search = _search(criteria)
    return box.uids(search, charset=_charset(search))
