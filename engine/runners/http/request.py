"""One request as configured, and the ``httpx.Request`` of each hop built from it.

A ``Request``'s strings may hold ``${vault.NAME}``; ``build`` reveals them for the host of the
hop being sent (the URL's own only on the first hop, never in its host), adds the
``Authorization`` header and the body, and refuses what httpx would fail on obscurely.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from multi_task_orchestrator.engine.errors import ConfigError
from multi_task_orchestrator.engine.runners.base import RunContext
from multi_task_orchestrator.engine.runners.http.config import (
    HEADER_NAME,
    BasicAuth,
    BearerAuth,
    OAuth2Auth,
    RequestFields,
)


class _NoBody:
    """Marks a request without a JSON body (``None`` is a JSON body: ``null``)."""

    def __repr__(self) -> str:
        return "NO_BODY"


NO_BODY: Any = _NoBody()

Reveal = Callable[[str], Awaitable[str]]
_HEADER_BREAK = re.compile(r"[\r\n\x00]")


@dataclass(slots=True)
class Request:
    """One request as configured: its strings may hold ``${vault.NAME}`` until each hop is sent.

    ``payload`` is published content (``multi_publish``): sent as it is, never searched for
    secrets. Without ``payload_field`` it is the JSON body, or an object merged under the fixed
    ``json``/``form`` fields; with ``payload_field`` it is put under that key.
    """

    method: str
    url: str
    params: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    auth: BearerAuth | BasicAuth | OAuth2Auth | None = None
    json: Any = NO_BODY
    content: str | None = None
    form: Mapping[str, Any] | None = None
    payload: Any = NO_BODY
    payload_field: str | None = None
    timeout: float | None = None
    expect_status: tuple[int | str, ...] = ("2xx",)
    follow_redirects: bool = True
    max_response_bytes: int | None = None  # the task's own limit; the server's applies too
    literal_url: bool = False  # a URL a server handed over (next page): used as it is

    @classmethod
    def of(cls, config: RequestFields, **body: Any) -> Request:
        return cls(
            method=config.method,
            url=config.url,
            params=config.params,
            headers=config.headers,
            auth=config.auth,
            timeout=config.timeout,
            expect_status=tuple(config.expect_status),
            follow_redirects=config.follow_redirects,
            max_response_bytes=config.max_response_bytes,
            **body,
        )


async def build(
    ctx: RunContext,
    client: httpx.AsyncClient,
    request: Request,
    url: str,
    host: str,
    method: str,
    first: bool,
    keep_body: bool,
    bearer: str | None = None,
) -> httpx.Request:
    """The request of one hop, with the secrets revealed for that hop's host; ``bearer`` is
    the OAuth2 access token for that host (``oauth2``), when ``auth`` is oauth2."""

    async def reveal(text: str) -> str:
        return await ctx.reveal(text, host=host) if "${" in text else text

    params = None
    if first:
        url = await reveal(url)
        if (urlsplit(url).hostname or "").lower().rstrip(".") != host:
            raise ConfigError(f"{method} {request.url}: a secret cannot be part of a URL's host")
        params = await _reveal_all(request.params, reveal)
    headers = {name: await reveal(value) for name, value in request.headers.items()}
    if isinstance(request.auth, OAuth2Auth):
        if bearer is None:
            raise AssertionError("an oauth2 request is built with its access token")
        headers["Authorization"] = f"Bearer {bearer}"
    elif request.auth is not None:
        headers["Authorization"] = await _authorization(request.auth, reveal)
    for name, value in headers.items():
        if not HEADER_NAME.fullmatch(name):  # h11 would refuse it as a network error
            raise ConfigError(
                f"{method} {request.url}: '{name}' is not a header name: use letters, digits "
                "and !#$%&'*+-.^_`|~ (a ${...} reference is replaced in values, not in names)"
            )
        if not value.isascii():  # httpx would fail with a bare UnicodeEncodeError
            raise ConfigError(
                f"{method} {request.url}: header {name} holds non-ASCII characters (a secret's "
                "value, once revealed?); HTTP header values must be ASCII: store the value "
                "percent- or base64-encoded, or send it in the body"
            )
        if _HEADER_BREAK.search(value):  # a second header or request smuggled in
            raise ConfigError(
                f"{method} {request.url}: header {name} holds a line break or NUL (from a "
                "reference?); a header value is one line: remove them, or send the text in "
                "the body"
            )
    body = await _body(request, reveal) if keep_body else {}
    options: dict[str, Any] = dict(body)
    if request.timeout is not None:
        options["timeout"] = httpx.Timeout(request.timeout)
    try:
        if params:  # added to the URL's own query (httpx would replace it), same names replaced
            url = str(httpx.URL(url).copy_merge_params(params))
        return client.build_request(method, url, headers=headers, **options)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"{method} {request.url}: invalid URL ({exc})") from None


async def _authorization(auth: BearerAuth | BasicAuth, reveal: Reveal) -> str:
    if isinstance(auth, BearerAuth):
        return f"Bearer {await reveal(auth.token)}"
    pair = f"{await reveal(auth.username)}:{await reveal(auth.password)}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


async def _reveal_all(value: Any, reveal: Reveal) -> Any:
    """``value`` with every string in it revealed (mappings and lists walked)."""
    if isinstance(value, str):
        return await reveal(value)
    if isinstance(value, Mapping):
        return {key: await _reveal_all(item, reveal) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [await _reveal_all(item, reveal) for item in value]
    return value


async def _body(request: Request, reveal: Reveal) -> dict[str, Any]:
    """The body arguments for ``build_request``; see ``Request`` for how a payload goes in."""
    fixed_json = request.json
    if fixed_json is not NO_BODY:
        fixed_json = await _reveal_all(fixed_json, reveal)
    form = await _reveal_all(request.form, reveal) if request.form is not None else None
    payload, key = request.payload, request.payload_field
    if payload is NO_BODY:
        if request.content is not None:
            return {"content": (await reveal(request.content)).encode()}
        if form is not None:
            return {"data": form}
        return {} if fixed_json is NO_BODY else {"json": fixed_json}
    if form is not None:
        if key is not None:
            return {"data": {**form, key: _form_value(payload)}}
        if not isinstance(payload, dict):
            raise ConfigError(
                f"a form can only carry an object payload, not {json_type(payload)}; "
                "set payload_field to send it as one field"
            )
        return {"data": {**{k: _form_value(v) for k, v in payload.items()}, **form}}
    if key is not None:
        base = {} if fixed_json is NO_BODY else fixed_json
        return {"json": {**base, key: payload}}
    if fixed_json is NO_BODY:
        return {"json": payload}
    if not isinstance(payload, dict):
        raise ConfigError(
            f"the fixed body fields can only be merged with an object payload, not "
            f"{json_type(payload)}; set payload_field to put the payload under one key"
        )
    return {"json": {**payload, **fixed_json}}


def _form_value(value: Any) -> Any:
    """A form field's value: scalars as they are, anything else as JSON text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value)


def json_type(value: Any) -> str:
    """How a JSON value is named in messages ('an object', 'a list', ...)."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )
