"""The ``email`` task type (alias ``mail``): send mail over SMTP, read it over IMAP.

Every action connects to ``host`` (``port`` by default from the protocol and ``security``:
SMTP 465/587/25, IMAP 993/143) only after the network policy admits it
(``Network.reach``: allow and deny lists, link-local and metadata refused, the per-host limit),
and then to exactly an address the policy checked, so a name that resolves elsewhere a moment
later cannot redirect the login. ``security`` is ``tls`` (implicit TLS, the default),
``starttls`` or ``plain``; certificates are checked against ``host``, and ``plain`` (the
password in clear) is refused unless every address is a loopback one. ``password`` is the only
field that may hold ``${vault.NAME}``, and must (a password written into a document is
refused); it is revealed at the moment of use for ``host`` (the secret's allowed hosts must
name it) and is replaced by ``***`` in any server message.

Actions:

- ``send`` (SMTP, ``aiosmtplib``) — ``from``, ``to``/``cc``/``bcc`` (lists), ``subject``,
  ``text`` and/or ``html``, ``attachments`` (workspace paths, checked as ``file_processing``
  checks them, read without following links; at most ``ORCHESTRATOR_EMAIL_MAX_ATTACHMENT_BYTES``
  in all). Output: ``{message_id, accepted, refused, response}``.
- ``search`` (IMAP) — ``folder`` (INBOX), ``criteria`` (``from``, ``to``, ``subject``, ``text``,
  ``since``, ``before``, ``unseen``, ``flagged``, ``uids``), ``limit`` (20, newest first),
  ``bodies`` (text and HTML, cut to ``ORCHESTRATOR_EMAIL_MAX_BODY_CHARS``), ``save_attachments``
  (a workspace folder: each message's attachments go to ``<folder>/<uid>/<name>``),
  ``mark_seen``. Output: ``{folder, count, messages: [{uid, from, to, cc, subject, date, flags,
  size, text, html, attachments}]}``; a message larger than the attachment limit gives its
  headers only, with ``skipped`` saying why.
- ``count`` (IMAP) — ``{folder, messages, unseen}``, and ``matching`` when ``criteria`` are
  given.
- ``mark`` (IMAP) — ``set``: ``seen``, ``unseen``, ``flagged`` or ``unflagged`` on the newest
  ``limit`` messages matching ``criteria``. Output: ``{folder, marked, uids}``.

Error classes: ``auth`` (login refused), ``network``, ``timeout``, ``policy`` (the network
policy, or plain text off loopback), ``smtp`` / ``imap`` (the server refused a command),
``too_large``, ``config``.

The modules: ``config`` (the config model and settings), ``connect`` (pinned sockets, TLS,
redaction), ``smtp``, ``imap`` and ``runner``.
"""

from multi_task_orchestrator.engine.runners.email.config import EmailConfig, EmailSettings
from multi_task_orchestrator.engine.runners.email.runner import EmailRunner

RUNNER = EmailRunner

__all__ = ["RUNNER", "EmailConfig", "EmailRunner", "EmailSettings"]
