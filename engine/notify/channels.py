"""One try at sending a notification to one channel.

A ``webhook+https://`` channel POSTs the JSON body through the engine's network (its policy and
pinned addresses), signed with ``X-Orchestrator-Signature: sha256=<hex HMAC-SHA256 of the body>``
under the channel's vault secret. Any other URL goes to Apprise, once the host Apprise would
reach (the service's API host, or the URL's own for ``json://``, ``mailto://``...) passed the
network policy. A ``${vault.NAME}`` in a URL and the signing key are revealed only for the
destination host, as the secret's allowed hosts say: for Apprise, the host it connects to (found
with the secrets left out), not the URL's, which a parameter such as mailto's ``smtp=`` can
override.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import warnings
from typing import Any
from urllib.parse import urlsplit

import httpx

from multi_task_orchestrator.engine.document.notify_models import NotifyChannel, secret_name
from multi_task_orchestrator.engine.errors import TaskError
from multi_task_orchestrator.engine.expressions.revealing import reveal_secrets
from multi_task_orchestrator.engine.network import Network
from multi_task_orchestrator.engine.secrets import SecretResolver

SIGNATURE_HEADER = "X-Orchestrator-Signature"
_SECRET_REFERENCE = re.compile(r"\$\{\s*vault\.[^}]*\}")
TRY_TIMEOUT = 10.0  # seconds one try may take

# Apprise reports failures through its logger, sometimes with the URL: not into our logs.
logging.getLogger("apprise").setLevel(logging.CRITICAL)


class DeliveryError(Exception):
    """One try failed; the message says why (it never holds a secret value). ``retry`` is
    false when another try cannot do better (a refused secret or host)."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


def signature(key: str, body: bytes) -> str:
    """The header value a receiver recomputes to trust the body."""
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


async def send(
    channel: NotifyChannel,
    body: dict[str, Any],
    *,
    network: Network,
    secrets: SecretResolver,
) -> str:
    """Send ``body`` once; return what the receiver said, raise DeliveryError if it failed."""
    try:
        if channel.is_webhook:
            return await asyncio.wait_for(_webhook(channel, body, network, secrets), TRY_TIMEOUT)
        return await asyncio.wait_for(_apprise(channel, body, network, secrets), TRY_TIMEOUT)
    except TimeoutError:
        raise DeliveryError(f"no answer within {TRY_TIMEOUT:g}s") from None
    except TaskError as exc:  # a refused secret or host
        raise DeliveryError(str(exc), retry=False) from None


async def _webhook(
    channel: NotifyChannel, body: dict[str, Any], network: Network, secrets: SecretResolver
) -> str:
    written = channel.url.split("+", 1)[1]
    host = _host_of(written)
    await network.policy.check(written)  # before any secret is revealed for it
    url = await reveal_secrets(written, secrets, host=host)
    data = json.dumps(body, sort_keys=True, ensure_ascii=False).encode()
    headers = {"content-type": "application/json"}
    name = secret_name(channel.secret) if channel.secret else None
    if name is not None:
        headers[SIGNATURE_HEADER] = signature(await secrets.resolve(name, host=host), data)
    try:
        async with network.host_limits.slot(host):
            response = await network.client().post(url, content=data, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    if not response.is_success:
        raise DeliveryError(f"HTTP {response.status_code}")
    return f"HTTP {response.status_code}"


async def _apprise(
    channel: NotifyChannel, body: dict[str, Any], network: Network, secrets: SecretResolver
) -> str:
    import apprise  # imported on first use: it loads many plugins

    _host_of(channel.url)
    # Where the plugin connects is not always the URL's host (a service's API host, mailto's
    # smtp=): found with the secrets left out, they are revealed for that host, and the
    # plugin they make must go to the same place.
    probe = _instantiate(_SECRET_REFERENCE.sub("placeholder", channel.url))
    target_host, port = _apprise_destination(probe)
    url = await reveal_secrets(channel.url, secrets, host=target_host.lower())
    plugin = _instantiate(url)
    if _apprise_destination(plugin) != (target_host, port):
        raise DeliveryError(
            "a secret of this channel's URL changes where Apprise sends it", retry=False
        )
    await network.policy.admit_host(target_host, port)
    title = f"{body['name']}: {body['event']}"
    lines = [body["summary"]]
    lines += [f"- {task['task_id']}: {task['error']}" for task in body["failed_tasks"]]
    kind = apprise.NotifyType.SUCCESS if body["event"] == "finished" else apprise.NotifyType.FAILURE
    sent = await asyncio.to_thread(
        plugin.notify, body="\n".join(lines), title=title, notify_type=kind
    )
    if not sent:
        raise DeliveryError("Apprise could not deliver it")
    return "sent"


def _instantiate(url: str) -> Any:
    """The Apprise plugin for ``url``; DeliveryError if Apprise does not understand it."""
    import apprise

    with warnings.catch_warnings():  # its PGP support imports the deprecated imghdr
        warnings.simplefilter("ignore", DeprecationWarning)
        plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        raise DeliveryError("Apprise does not understand this URL", retry=False)
    return plugin


def _apprise_destination(plugin: Any) -> tuple[str, int]:
    """The host and port the plugin will connect to: its service's fixed API URL when it has
    one (Slack, Discord, Telegram...), else the host of the URL itself."""
    for attribute in ("notify_url", "webhook_url"):
        fixed = getattr(plugin, attribute, None)
        if isinstance(fixed, str) and fixed.startswith(("http://", "https://")):
            parts = urlsplit(fixed)
            return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    host = getattr(plugin, "smtp_host", None) or getattr(plugin, "host", None) or ""
    port = getattr(plugin, "port", None)
    if not isinstance(port, int):
        port = 443 if getattr(plugin, "secure", False) else 80
    return str(host), port


def _host_of(url: str) -> str:
    """The host a URL names; a secret may not stand in for it."""
    host = (urlsplit(url).hostname or "").lower()
    if not host or "${" in (urlsplit(url).netloc.rpartition("@")[2]):
        raise DeliveryError(
            "the channel URL has no host (a secret cannot be its host)", retry=False
        )
    return host
