"""The demo's mailbox for pattern 3: a real IMAP server (``pymap``, its in-memory backend) on
127.0.0.1, in the running event loop, holding a few messages, some unread.

Plain text (no TLS), which the ``email`` task type allows to loopback addresses only. One user,
``INBOX_USER``, with ``INBOX_PASSWORD`` (the demo's vault holds it as ``INBOX_PASSWORD``).
"""

from __future__ import annotations

import asyncio
from argparse import Namespace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from proxyprotocol.reader import ProxyProtocolReader
from pymap.backend.dict import DictBackend
from pymap.imap import IMAPServer
from pymap.parsing.message import AppendMessage
from pymap.parsing.specials.flag import Flag, Seen

INBOX_USER = "demo"
INBOX_PASSWORD = "demo-inbox-pass-7c41e0"
INBOX_ADDRESS = "demo@accounts.example"

# (from, subject, hours ago, read): the inbox, oldest first
MESSAGES = [
    ("billing@cloud.example", "Your invoice for last month", 50, True),
    ("team@social.example", "Weekly engagement digest", 30, True),
    ("security@cloud.example", "New sign-in from a new device", 20, False),
    ("editor@blog-a.example", "Draft ready for review", 6, False),
    ("alerts@status.example", "Scheduled maintenance on Friday", 2, False),
]
UNREAD = sum(1 for *_, read in MESSAGES if not read)


def _message(sender: str, subject: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = INBOX_ADDRESS
    message["Subject"] = subject
    message.set_content(f"{subject}.\n\nThis message is demo text served by `orchestrator demo`.")
    return message.as_bytes()


class DemoInbox:
    """pymap serving ``MESSAGES`` on a free loopback port while the context is open."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> DemoInbox:
        args = Namespace(
            host="127.0.0.1",
            port=0,
            debug=False,
            cert=None,
            key=None,
            tls=False,
            proxy_protocol=None,
            passlib_cfg=None,
            demo_data=False,
            demo_user=INBOX_USER,
            demo_password=INBOX_PASSWORD,
        )
        backend, config = await DictBackend.init(args, invalid_user_sleep=0.0)
        now = datetime.now(UTC)
        async with backend.login.demo_user_identity.new_session() as session:
            inbox = await session.mailbox_set.get_mailbox("INBOX")
            for sender, subject, hours, read in MESSAGES:
                flags: frozenset[Flag] = frozenset({Seen}) if read else frozenset()
                received = now - timedelta(hours=hours)
                await inbox.append(AppendMessage(_message(sender, subject), received, flags))
        callback = ProxyProtocolReader(config.proxy_protocol).get_callback(
            IMAPServer(backend.login, config)
        )
        self._server = await asyncio.start_server(callback, host="127.0.0.1", port=0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
