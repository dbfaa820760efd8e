"""What an ``email`` task is configured with (``EmailConfig``: the connection, the action and
the fields it uses, checked against each other), and the runner's settings (``EmailSettings``)."""

from __future__ import annotations

import re
from datetime import date
from email.utils import getaddresses
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from multi_task_orchestrator.engine.runners.base import RunnerConfig

Action = Literal["send", "search", "count", "mark"]
Security = Literal["tls", "starttls", "plain"]
Mark = Literal["seen", "unseen", "flagged", "unflagged"]

_VAULT_REFERENCE = re.compile(r"\$\{vault\.[A-Za-z_][A-Za-z0-9_.-]*\}")

DEFAULT_PORTS: dict[tuple[str, Security], int] = {
    ("smtp", "tls"): 465,
    ("smtp", "starttls"): 587,
    ("smtp", "plain"): 25,
    ("imap", "tls"): 993,
    ("imap", "starttls"): 143,
    ("imap", "plain"): 143,
}

_CONNECTION = frozenset({"host", "port", "security", "username", "password", "timeout"})
_SEARCH = frozenset({"folder", "criteria"})
_FIELDS_USED: dict[str, frozenset[str]] = {
    "send": _CONNECTION
    | {"sender", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "attachments"},
    "search": _CONNECTION | _SEARCH | {"limit", "bodies", "save_attachments", "mark_seen"},
    "count": _CONNECTION | _SEARCH,
    "mark": _CONNECTION | _SEARCH | {"limit", "set"},
}
_EXAMPLES = {
    "send": "e.g. to: [ops@example.com], subject: Report, text: ..., attachments: [out/r.csv]",
    "search": "e.g. criteria: {from: alerts@example.com, unseen: true}",
    "count": "e.g. criteria: {unseen: true}",
    "mark": "e.g. criteria: {subject: Report}, set: seen",
}


_UID = r"^[1-9][0-9]*(:([1-9][0-9]*|\*))?$"


def _uid(value: object) -> object:
    """A UID or a span of them (``101``, ``101:105``, ``101:*``), as IMAP writes them; one written
    as a number (``uids: [101]``) is taken as its text. Nothing else reaches the search."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and not re.fullmatch(_UID, value):
        raise PydanticCustomError(
            "email_config",
            "'{value}' is not a message UID",
            {"value": value, "hint": "a UID is a number (101) or a span (101:105, 101:*)"},
        )
    return value


Uid = Annotated[str, BeforeValidator(_uid), Field(json_schema_extra={"pattern": _UID})]


class Criteria(BaseModel):
    """Which messages of the folder an IMAP action works on; all given must hold."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    sender: str | None = Field(None, alias="from", description="the From header contains this")
    to: str | None = Field(None, description="the To header contains this")
    subject: str | None = Field(None, description="the subject contains this")
    text: str | None = Field(None, description="the headers or body contain this")
    since: date | None = Field(None, description="received on or after this date (YYYY-MM-DD)")
    before: date | None = Field(None, description="received before this date")
    unseen: bool | None = Field(None, description="true: only unread; false: only read")
    flagged: bool | None = Field(None, description="true: only flagged; false: only unflagged")
    uids: list[Uid] | None = Field(None, description="only these UIDs (from a search's output)")


class EmailConfig(RunnerConfig):
    """Config of an ``email`` task."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    action: Action = Field(description="send (SMTP), search, count or mark (IMAP)")
    host: str = Field(description="the mail server's host name")
    port: int | None = Field(
        None, ge=1, le=65535, description="by default from the protocol and security"
    )
    security: Security = Field(
        "tls",
        description="tls (implicit TLS), starttls, or plain (only to a loopback address)",
    )
    username: str | None = Field(None, description="the login; none: no login (SMTP only)")
    password: str | None = Field(None, description="the password: ${vault.NAME}")
    timeout: float = Field(30.0, gt=0, le=600, description="seconds for each server exchange")
    # send
    sender: str | None = Field(None, alias="from", description="send: the From address")
    to: list[str] = Field(default_factory=list, description="send: recipients")
    cc: list[str] = Field(default_factory=list, description="send: copy recipients")
    bcc: list[str] = Field(default_factory=list, description="send: hidden recipients")
    reply_to: str | None = Field(None, description="send: the Reply-To address")
    subject: str = Field("", description="send: the subject")
    text: str | None = Field(None, description="send: the plain-text body")
    html: str | None = Field(None, description="send: the HTML body")
    attachments: list[str] = Field(
        default_factory=list, description="send: workspace files to attach"
    )
    # IMAP
    folder: str = Field("INBOX", description="search/count/mark: the mailbox folder")
    criteria: Criteria = Field(default_factory=Criteria, description="which messages")
    limit: int = Field(20, ge=1, le=500, description="search/mark: at most this many messages")
    bodies: bool = Field(True, description="search: include text and HTML bodies")
    save_attachments: str | None = Field(
        None, description="search: a workspace folder to save attachments in"
    )
    mark_seen: bool = Field(False, description="search: mark the fetched messages as read")
    set: Mark | None = Field(None, description="mark: seen, unseen, flagged or unflagged")

    @field_validator("password")
    @classmethod
    def _from_the_vault(cls, value: str | None) -> str | None:
        # the value itself is never repeated: it may be a password written by mistake
        if value is not None and not _VAULT_REFERENCE.fullmatch(value.strip()):
            raise PydanticCustomError(
                "email_password",
                "password must be a ${vault.NAME} reference, not the password itself",
                {
                    "hint": "store it in the vault for the mail host (orchestrator vault set "
                    "NAME --hosts mail.example.com), then write password: ${vault.NAME}"
                },
            )
        return value.strip() if value is not None else None

    @field_validator("to", "cc", "bcc", "attachments", mode="before")
    @classmethod
    def _one_or_more(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("sender", "to", "cc", "bcc", "reply_to")
    @classmethod
    def _one_address_each(cls, value: str | list[str] | None) -> str | list[str] | None:
        for entry in [value] if isinstance(value, str) else value or []:
            if "${" in entry:
                continue  # judged once resolved
            found = getaddresses([entry])
            local, _, domain = found[0][1].rpartition("@") if len(found) == 1 else ("", "", "")
            if not (local and domain):
                raise PydanticCustomError(
                    "email_config",
                    "'{entry}' is not one email address",
                    {
                        "entry": entry.replace("\r", "\\r").replace("\n", "\\n"),
                        "hint": "give one address per entry, e.g. to: [ops@example.com, "
                        "'Ann Lee <ann@example.com>']",
                    },
                )
        return value

    @model_validator(mode="after")
    def _fits_action(self) -> EmailConfig:
        used = _FIELDS_USED[self.action]
        unused = sorted(self.model_fields_set - used - {"action"})
        if unused:
            raise PydanticCustomError(
                "email_config",
                "action '{action}' does not use '{name}'",
                {"action": self.action, "name": "from" if unused[0] == "sender" else unused[0]},
            )
        if self.action == "send":
            if not (self.to or self.cc or self.bcc):
                return self._needs("to")
            if self.sender is None:
                return self._needs("from")
            if self.text is None and self.html is None:
                return self._needs("text")
        if self.action == "mark" and self.set is None:
            return self._needs("set")
        if self.password is not None and self.username is None:
            return self._needs("username")
        if self.action != "send" and self.username is None:
            return self._needs("username")
        return self

    def _needs(self, name: str) -> EmailConfig:
        raise PydanticCustomError(
            "email_config",
            "action '{action}' needs '{name}'",
            {"action": self.action, "name": name, "hint": _EXAMPLES[self.action]},
        )

    def server_port(self) -> int:
        protocol = "smtp" if self.action == "send" else "imap"
        return self.port or DEFAULT_PORTS[(protocol, self.security)]


class EmailSettings(BaseModel):
    """How much an ``email`` task may move."""

    max_attachment_bytes: ByteSize = Field(
        ByteSize(25 * 1024 * 1024),
        description="the largest attachment an `email` task sends or saves, and the most it "
        "attaches to one message",
    )
    max_body_chars: int = Field(
        100_000,
        ge=1,
        description="an `email` search's text and HTML bodies are cut to this many characters",
    )
