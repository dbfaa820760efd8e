"""Sending one message with ``aiosmtplib`` over a socket to the address the policy admitted:
the message built from the task (text and/or HTML, attachments read from the workspace through
``workspace_fs``), then STARTTLS or implicit TLS, the login, and the send; errors classed."""

from __future__ import annotations

import asyncio
import mimetypes
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import aiosmtplib

from multi_task_orchestrator.engine.errors import ConfigError, TaskError
from multi_task_orchestrator.engine.network import Destination
from multi_task_orchestrator.engine.runners.email.config import EmailConfig
from multi_task_orchestrator.engine.runners.email.connect import (
    pinned_socket,
    redact,
    tls_context,
)
from multi_task_orchestrator.engine.runners.files.paths import inside, under
from multi_task_orchestrator.engine.runners.workspace_fs import read_file


def _read_attachment(root: Path, given: str, limit: int) -> tuple[str, bytes]:
    path = inside(root, given, "attachment")
    shown = f"'{given}'"
    try:
        data = read_file(str(root), under(root, path), shown, limit)
    except IsADirectoryError:
        raise TaskError(f"attachment {shown} is a folder, not a file") from None
    if data is None:
        raise TaskError(f"attachment {shown} does not exist")
    return path.name, data


def _headers(config: EmailConfig) -> EmailMessage:
    message = EmailMessage()
    message["From"] = config.sender or ""
    if config.to:
        message["To"] = ", ".join(config.to)
    if config.cc:
        message["Cc"] = ", ".join(config.cc)
    if config.reply_to:
        message["Reply-To"] = config.reply_to
    message["Subject"] = config.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=(config.sender or "x@localhost").split("@")[-1])
    return message


async def build_message(config: EmailConfig, root: Path | None, limit: int) -> EmailMessage:
    """The message the task describes; attachments over ``limit`` bytes in all are refused."""
    try:
        message = _headers(config)
    except ValueError as exc:  # a line break in a header: it could add headers of its own
        raise ConfigError(f"a header of the message cannot be used: {exc}") from None
    if config.text is not None:
        message.set_content(config.text)
    if config.html is not None:
        if config.text is None:
            message.set_content(config.html, subtype="html")
        else:
            message.add_alternative(config.html, subtype="html")
    total = 0
    for given in config.attachments:
        if root is None:
            raise TaskError("no workspace folder is configured (set ORCHESTRATOR_WORKSPACE)")
        name, data = await asyncio.to_thread(_read_attachment, root, given, limit - total + 1)
        total += len(data)
        if total > limit:
            raise TaskError(
                f"the attachments come to more than ORCHESTRATOR_EMAIL_MAX_ATTACHMENT_BYTES "
                f"({limit} bytes) at '{given}'; attach less, or raise it",
                "too_large",
            )
        kind, _ = mimetypes.guess_type(name)
        maintype, subtype = (kind or "application/octet-stream").split("/", 1)
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message


async def send(
    config: EmailConfig, destination: Destination, password: str | None, message: EmailMessage
) -> dict[str, Any]:
    """Send ``message``; the output names the accepted and refused recipients."""
    sock = await pinned_socket(destination, config.timeout)
    client = aiosmtplib.SMTP(
        hostname=destination.host,
        sock=sock,
        use_tls=config.security == "tls",
        start_tls=config.security == "starttls",
        tls_context=tls_context(),
        timeout=config.timeout,
    )
    recipients = [*config.to, *config.cc, *config.bcc]
    try:
        async with client:
            if config.username is not None:
                await client.login(config.username, password or "")
            refused, response = await client.send_message(
                message, sender=config.sender, recipients=recipients
            )
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise TaskError(
            f"the SMTP server {destination.host} refused the login of {config.username}: "
            f"{exc.code} {redact(exc.message, password)}",
            "auth",
        ) from None
    except aiosmtplib.SMTPTimeoutError:
        raise TaskError(
            f"the SMTP server {destination.host} did not answer within {config.timeout:g} s",
            "timeout",
        ) from None
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, OSError) as exc:
        raise TaskError(
            f"SMTP connection to {destination.host} failed: {redact(str(exc), password)}",
            "network",
        ) from None
    except aiosmtplib.SMTPException as exc:
        raise TaskError(
            f"the SMTP server {destination.host} refused the message: {redact(str(exc), password)}",
            "smtp",
        ) from None
    finally:
        sock.close()
    return {
        "message_id": message["Message-ID"],
        "accepted": [r for r in recipients if r not in refused],
        "refused": {r: f"{code} {text}" for r, (code, text) in refused.items()},
        "response": response,
    }
