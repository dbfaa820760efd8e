"""The ``http`` task type (alias ``api_call``): one HTTP request, or a paginated series of them.

Every request goes through the engine's ``Network``: the network policy checks each hop's URL
(redirects are followed here, one hop at a time, never by the client), the per-host limits give
each hop and each page a slot, and one shared ``httpx.AsyncClient`` pools the connections.

Secrets: any string of ``url``, ``params``, ``headers``, ``json``/``body``/``form`` and ``auth``
may hold ``${vault.NAME}``. It is revealed for the host of each hop right before that hop is
sent, so a redirect to a host the secret is not allowed for fails with the vault's refusal and
never carries the secret there. Error messages show the configured (unrevealed) text. Every
response is redacted as it arrives (``redacted``): its body and headers have each secret masked
before ``extract``, ``paginate``, a redirect's ``Location``, an artifact file or an error excerpt
reads them. URLs a server hands over are never searched for ``${vault.NAME}`` references.

Output: ``{status, headers, data}`` where ``headers`` is a safe subset (content type and length,
etag, last-modified, location, retry-after, link) and ``data`` the body read as ``response``
says — ``json`` (default), ``text``, ``bytes`` (saved as a file in the run's artifacts folder;
``data`` is then ``{artifact, size, mime_type}``) or ``auto`` (JSON when the body is JSON, text
otherwise) — then narrowed by ``extract`` (JMESPath). With ``paginate``, ``data`` holds the items
of every page in order and the output also has ``pages``.

Error classes, for ``retry.on``: ``http_429`` (with ``Retry-After``, seconds or an HTTP date, as
the next delay), ``http_5xx``, ``http_4xx`` (not retried by default), ``timeout``, ``network``
(connect and read errors), ``policy`` (refused by the network policy; never retried), ``auth``
(an OAuth2 token endpoint refused to give a token).

``auth: {type: oauth2, ...}`` sends an OAuth2 access token (client credentials or refresh token
grant) that is fetched from the token endpoint and cached in the vault (``oauth2``).

Settings (``HttpSettings``): ``ORCHESTRATOR_MAX_RESPONSE_BYTES``, the largest body a task reads.

The request code (``Request``, ``exchange``, ``read_body``, ``reply_output``) and the settings are
shared with ``multi_publish``, which imports them from their modules.

- ``config``: the config models (``HttpConfig``, ``RequestFields``) and ``HttpSettings``.
- ``request``: one request as configured, and each hop's request with its secrets revealed.
- ``exchange``: sending a request hop by hop through the network policy and the host limits.
- ``receive``: reading a body as it streams, under the size limit, and redacting it.
- ``oauth2``: OAuth2 access tokens: fetched, cached in the vault, renewed on a 401.
- ``reply``: the final status, the body as ``response`` says, ``extract``, the output.
- ``pagination``: the series of pages of ``paginate``.
- ``runner``: the ``HttpRunner``.

The request code loads on first use (it needs httpx, ~0.1 s to import): a command that only
reads the runner's declaration (``--help``, ``validate``, the settings) does not load it. Its
names are found here on first use too, except ``exchange``, which is also its module's name
(once the module is loaded, the package's ``exchange`` is the module): import it from
``http.exchange``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from multi_task_orchestrator.engine.runners.http.config import (
    MAX_REDIRECTS,
    Auth,
    BasicAuth,
    BearerAuth,
    FormValue,
    HttpConfig,
    HttpSettings,
    Method,
    OAuth2Auth,
    Paginate,
    RequestFields,
    ResponseKind,
    Scalar,
    compile_jmespath,
    status_matcher,
)
from multi_task_orchestrator.engine.runners.http.runner import HttpRunner

if TYPE_CHECKING:
    from multi_task_orchestrator.engine.runners.http.exchange import REDIRECT_STATUSES
    from multi_task_orchestrator.engine.runners.http.receive import ResponseLimit, redacted
    from multi_task_orchestrator.engine.runners.http.reply import (
        EXCERPT_LENGTH,
        SAFE_HEADERS,
        Reply,
        body_excerpt,
        check_status,
        extract,
        read_body,
        reply_output,
        retry_after_seconds,
        safe_headers,
        save_artifact,
    )
    from multi_task_orchestrator.engine.runners.http.request import NO_BODY, Request

RUNNER = HttpRunner

# the request code's names, and the module (under this package) that defines each
_LAZY = {
    "REDIRECT_STATUSES": "exchange",
    "ResponseLimit": "receive",
    "redacted": "receive",
    "EXCERPT_LENGTH": "reply",
    "SAFE_HEADERS": "reply",
    "Reply": "reply",
    "body_excerpt": "reply",
    "check_status": "reply",
    "extract": "reply",
    "read_body": "reply",
    "reply_output": "reply",
    "retry_after_seconds": "reply",
    "safe_headers": "reply",
    "save_artifact": "reply",
    "NO_BODY": "request",
    "Request": "request",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "EXCERPT_LENGTH",
    "MAX_REDIRECTS",
    "NO_BODY",
    "REDIRECT_STATUSES",
    "RUNNER",
    "SAFE_HEADERS",
    "Auth",
    "BasicAuth",
    "BearerAuth",
    "FormValue",
    "HttpConfig",
    "HttpRunner",
    "HttpSettings",
    "Method",
    "OAuth2Auth",
    "Paginate",
    "Reply",
    "Request",
    "RequestFields",
    "ResponseKind",
    "ResponseLimit",
    "Scalar",
    "body_excerpt",
    "check_status",
    "compile_jmespath",
    "extract",
    "read_body",
    "redacted",
    "reply_output",
    "retry_after_seconds",
    "safe_headers",
    "save_artifact",
    "status_matcher",
]
