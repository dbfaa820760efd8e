"""The ``email`` runner: the host admitted by the network policy (holding its per-host slot),
the password revealed for that host only, then the SMTP or IMAP work."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from multi_task_orchestrator.engine.runners.base import RunContext, Runner
from multi_task_orchestrator.engine.runners.email.config import EmailConfig, EmailSettings
from multi_task_orchestrator.engine.runners.email.connect import refuse_plain_off_loopback
from multi_task_orchestrator.engine.runners.files.paths import inside, workspace_root


class EmailRunner(Runner[EmailConfig]):
    """Sends mail over SMTP, and searches, fetches, counts and marks it over IMAP."""

    type_name: ClassVar[str] = "email"
    aliases: ClassVar[tuple[str, ...]] = ("mail",)
    listing_rank: ClassVar[int] = 45
    config_model: ClassVar[type[EmailConfig]] = EmailConfig
    settings_model: ClassVar[type[EmailSettings]] = EmailSettings
    secret_fields: ClassVar[frozenset[str]] = frozenset({"password"})
    error_classes: ClassVar[frozenset[str]] = frozenset({"auth", "smtp", "imap"})
    summary: ClassVar[str] = (
        "Sends mail over SMTP (text and/or HTML, attachments from the workspace) or searches, "
        "fetches, counts and marks it over IMAP (attachments saved into the workspace); "
        "TLS or STARTTLS, the password from the vault."
    )
    example: ClassVar[dict[str, Any]] = {
        "id": "mail_report",
        "type": "email",
        # a relay on this machine, which needs no login; for a mail provider: host,
        # security: starttls, username and password: ${vault.SMTP_PASSWORD}
        "config": {
            "action": "send",
            "host": "127.0.0.1",
            "port": 25,
            "security": "plain",
            "from": "reports@example.com",
            "to": ["team@example.com"],
            "subject": "Daily report",
            "text": "The report is attached.",
            "attachments": ["out/report.csv"],
        },
        "dependencies": ["save_report"],
    }

    def __init__(self, settings: EmailSettings | Mapping[str, Any] | None = None) -> None:
        super().__init__(settings)

    async def run(self, config: EmailConfig, ctx: RunContext) -> Any:
        # the mail libraries (imap_tools, aiosmtplib) load when mail is handled, not with the
        # runner's declaration, which every command reads
        from multi_task_orchestrator.engine.runners.email.imap import count, mark, search
        from multi_task_orchestrator.engine.runners.email.smtp import build_message, send

        settings = self.settings_as(EmailSettings)
        limit = int(settings.max_attachment_bytes)
        root = self._workspace(config, ctx)
        message = None
        if config.action == "send":
            message = await build_message(config, root, limit)
        port = config.server_port()
        async with ctx.network.reach(config.host, port, on_wait=ctx.waiting) as destination:
            if config.security == "plain":
                refuse_plain_off_loopback(destination)
            password = None
            if config.password is not None:
                password = await ctx.reveal(config.password, host=destination.host)
            where = f"{destination.host}:{destination.port}"
            if message is not None:
                result = await send(config, destination, password, message)
                ctx.log(f"sent '{config.subject}' to {len(result['accepted'])} recipient(s)")
                return result
            if config.action == "search":
                found = await asyncio.to_thread(
                    search,
                    config,
                    destination,
                    password,
                    root,
                    limit,
                    settings.max_body_chars,
                    ctx.secrets.redact,
                )
                ctx.log(f"found {found['count']} message(s) in {config.folder} at {where}")
                return found
            if config.action == "count":
                return await asyncio.to_thread(count, config, destination, password)
            marked = await asyncio.to_thread(mark, config, destination, password)
            ctx.log(f"marked {len(marked['uids'])} message(s) {config.set} at {where}")
            return marked

    @staticmethod
    def _workspace(config: EmailConfig, ctx: RunContext) -> Path | None:
        if not config.attachments and config.save_attachments is None:
            return None
        root = workspace_root(ctx)
        if config.save_attachments is not None:  # refused before connecting, attachments or not
            inside(root, config.save_attachments, "save_attachments folder")
        return root
