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
(connect and read errors), ``policy`` (refused by the network policy; never retried).

Settings (``HttpSettings``): ``ORCHESTRATOR_MAX_RESPONSE_BYTES``, the largest body a task reads.

The request code (``Request``, ``exchange``, ``read_body``, ``reply_output``) and the settings are
shared with ``multi_publish``.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import mimetypes
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urljoin, urlsplit

import httpx
import jmespath
from jmespath import exceptions as jmespath_errors
from pydantic import (
    BaseModel,
    BeforeValidator,
    ByteSize,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from multi_task_orchestrator.engine.atomic import write_atomic
from multi_task_orchestrator.engine.document.units import Duration
from multi_task_orchestrator.engine.errors import ConfigError, TaskError
from multi_task_orchestrator.engine.limits import (
    DEFAULT_MAX_RESPONSE_BYTES,
    MAX_DATA_DEPTH,
    compile_expression,
    jmespath_problem,
    nests_deeper,
    search,
    show_bytes,
)
from multi_task_orchestrator.engine.network import PolicyError
from multi_task_orchestrator.engine.runners.base import RunContext, Runner, RunnerConfig
from multi_task_orchestrator.engine.secrets import NoVault, redact_bytes

MAX_REDIRECTS = 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
SAFE_HEADERS = (
    "content-type",
    "content-length",
    "etag",
    "last-modified",
    "location",
    "retry-after",
    "link",
)
EXCERPT_LENGTH = 200
_STATUS_RANGE = re.compile(r"^([1-5])xx$", re.IGNORECASE)
_STATUS_SPAN = re.compile(r"^(\d{3})\s*-\s*(\d{3})$")
_UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")

Scalar = str | int | float | bool | None
ResponseKind = Literal["json", "text", "bytes", "auto"]


class _NoBody:
    """Marks a request without a JSON body (``None`` is a JSON body: ``null``)."""

    def __repr__(self) -> str:
        return "NO_BODY"


NO_BODY: Any = _NoBody()


# --- config ---------------------------------------------------------------------------------


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _as_text(value: Any) -> Any:
    """Header values written as numbers in YAML are sent as their text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str | int) else value


Method = Annotated[
    Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"], BeforeValidator(_upper)
]
HeaderValue = Annotated[str, BeforeValidator(_as_text)]


def _config_error(kind: str, message: str, hint: str | None = None, **values: Any) -> Exception:
    return PydanticCustomError(kind, message, {**values, **({"hint": hint} if hint else {})})


def compile_jmespath(text: str, field_name: str) -> jmespath.parser.ParsedResult:
    """Compile an expression of the config; ConfigError saying what is wrong."""
    try:
        return compile_expression(text)
    except jmespath_errors.JMESPathError as exc:
        problem = jmespath_problem(exc)
        raise ConfigError(f"invalid JMESPath in '{field_name}': {problem} in '{text}'") from None


def _check_jmespath(text: str | None, field_name: str) -> str | None:
    if text is None or "${" in text:
        return text  # checked once the reference is resolved
    try:
        compile_expression(text)
    except jmespath_errors.JMESPathError as exc:
        raise _config_error(
            "jmespath",
            "invalid JMESPath in '{field}': {problem}",
            "see https://jmespath.org; literals go in backticks, e.g. items[?id > `3`]",
            field=field_name,
            problem=jmespath_problem(exc),
        ) from None
    return text


class BearerAuth(RunnerConfig):
    """``Authorization: Bearer <token>``; the token is usually ``${vault.NAME}``."""

    type: Literal["bearer"]
    token: str


class BasicAuth(RunnerConfig):
    """HTTP basic authentication; the password is usually ``${vault.NAME}``."""

    type: Literal["basic"]
    username: str
    password: str


Auth = Annotated[BearerAuth | BasicAuth, Field(discriminator="type")]


class Paginate(RunnerConfig):
    """How to find the next page, and the items of each page."""

    next: str = Field(
        description="'link' follows the Link header's rel=\"next\"; anything else is JMESPath "
        "over each page's JSON giving the next URL (null or empty ends)"
    )
    items: str | None = Field(
        None, description="JMESPath selecting each page's items; without it a page must be a list"
    )
    max_pages: int = Field(10, ge=1, le=1000, description="stop after this many pages")

    @field_validator("next")
    @classmethod
    def _next_expression(cls, value: str) -> str:
        return value if value == "link" else _check_jmespath(value, "paginate.next") or value

    @field_validator("items")
    @classmethod
    def _items_expression(cls, value: str | None) -> str | None:
        return _check_jmespath(value, "paginate.items")


class RequestFields(RunnerConfig):
    """What every HTTP request template has (the ``http`` task, each publishing destination)."""

    method: Method = Field("GET", description="GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS")
    url: str = Field(description="http or https URL")
    params: dict[str, Scalar | list[Scalar]] | None = Field(
        None, description="query parameters added to the URL"
    )
    headers: dict[str, HeaderValue] = Field(default_factory=dict, description="request headers")
    auth: Auth | None = Field(
        None,
        description="{type: bearer, token: ...} or {type: basic, username: ..., password: ...}; "
        "values usually ${vault.NAME}",
    )
    timeout: Duration | None = Field(None, description="limit on each request, e.g. 10s")
    expect_status: Annotated[list[int | str], BeforeValidator(_one_or_many)] = Field(
        default_factory=lambda: list[int | str](["2xx"]),
        description='accepted statuses: codes (201), classes ("2xx") or spans ("200-299")',
    )
    response: ResponseKind = Field(
        "json",
        description="read the body as json, text, bytes (saved as an artifact file) or auto "
        "(json when it is JSON, text otherwise)",
    )
    extract: str | None = Field(None, description="JMESPath over the JSON body: the output data")
    follow_redirects: bool = Field(
        True, description=f"follow up to {MAX_REDIRECTS} redirects, checking every hop"
    )
    max_response_bytes: ByteSize | None = Field(
        None,
        gt=0,
        description="fail (class too_large) when a response body is larger, e.g. 5MB; it can "
        "only lower the server's ORCHESTRATOR_MAX_RESPONSE_BYTES",
    )

    @field_validator("url")
    @classmethod
    def _web_url(cls, url: str) -> str:
        if "${" not in url and urlsplit(url.strip()).scheme.lower() not in ("http", "https"):
            raise _config_error(
                "url",
                "'{url}' is not an http or https URL",
                "write the whole URL, e.g. https://api.example.org/items",
                url=url,
            )
        return url.strip()

    @field_validator("expect_status")
    @classmethod
    def _status_patterns(cls, patterns: list[int | str]) -> list[int | str]:
        for pattern in patterns:
            if status_matcher(pattern) is None:
                raise _config_error(
                    "expect_status",
                    "'{pattern}' is not a status pattern",
                    'use codes such as 201, classes such as "2xx", or spans such as "200-299"',
                    pattern=pattern,
                )
        return patterns

    @field_validator("extract")
    @classmethod
    def _extract_expression(cls, value: str | None) -> str | None:
        return _check_jmespath(value, "extract")

    @model_validator(mode="after")
    def _extract_needs_json(self) -> RequestFields:
        if self.extract is not None and self.response in ("text", "bytes"):
            raise _config_error(
                "extract",
                "'extract' reads JSON, but response is '{response}'",
                "use response: json (the default), or remove extract",
                response=self.response,
            )
        return self


class HttpConfig(RequestFields):
    """Config of an ``http`` task."""

    json_body: Any = Field(None, alias="json", description="a JSON body (any JSON value)")
    body: str | None = Field(None, description="a text body, sent as it is")
    form: dict[str, Scalar] | None = Field(None, description="a form body (url-encoded fields)")
    paginate: Paginate | None = Field(None, description="follow next-page links")

    @model_validator(mode="after")
    def _one_body(self) -> HttpConfig:
        given = [name for name in ("json_body", "body", "form") if name in self.model_fields_set]
        if len(given) > 1:
            shown = " and ".join("json" if name == "json_body" else name for name in given)
            raise _config_error(
                "body", "give one body, not {shown}", "use json, body or form", shown=shown
            )
        if self.paginate is not None and self.response in ("text", "bytes"):
            raise _config_error(
                "paginate",
                "paginate reads each page as JSON, but response is '{response}'",
                "remove response, or paginate",
                response=self.response,
            )
        return self


def status_matcher(pattern: int | str) -> Callable[[int], bool] | None:
    """A test for one ``expect_status`` entry, or None when the entry is not a pattern."""
    text = str(pattern).strip()
    if text.isdigit() and 100 <= int(text) <= 599:
        code = int(text)
        return lambda status: status == code
    if match := _STATUS_RANGE.match(text):
        first = int(match.group(1))
        return lambda status: status // 100 == first
    if (match := _STATUS_SPAN.match(text)) and int(match.group(1)) <= int(match.group(2)):
        low, high = int(match.group(1)), int(match.group(2))
        return lambda status: low <= status <= high
    return None


# --- one request, hop by hop ----------------------------------------------------------------


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
    auth: BearerAuth | BasicAuth | None = None
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


@dataclass(slots=True)
class Reply:
    """The final response of a request, and how to name the request in messages."""

    method: str
    shown_url: str  # the configured text (secrets unrevealed), or the URL a server gave
    response: httpx.Response

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def label(self) -> str:
        return f"{self.method} {self.shown_url}"


class HttpSettings(BaseModel):
    """The settings of the runners that send HTTP requests (``http``, ``multi_publish``)."""

    max_response_bytes: ByteSize = Field(
        ByteSize(DEFAULT_MAX_RESPONSE_BYTES),
        gt=0,
        description="the largest HTTP response body a task reads (e.g. 50MiB); a larger one is "
        "cut off while it streams and fails the attempt (class too_large). A task's "
        "max_response_bytes can only lower it",
        json_schema_extra={"env": "ORCHESTRATOR_MAX_RESPONSE_BYTES"},
    )


async def exchange(ctx: RunContext, request: Request, max_response_bytes: int) -> Reply:
    """Send ``request``, following redirects hop by hop; raise TaskError unless the final
    status is one ``request.expect_status`` accepts. ``max_response_bytes`` is the server's
    limit on a body (``HttpSettings``); the request's own can only lower it."""
    network = ctx.network
    client = network.client()
    url = shown = request.url
    method = request.method
    first = not request.literal_url
    keep_body = True
    limit = ResponseLimit.of(max_response_bytes, request)
    for hop in range(MAX_REDIRECTS + 1):
        try:
            host = await network.policy.check(url)
        except PolicyError as exc:
            if hop == 0:
                raise
            raise PolicyError(f"{request.method} {request.url} redirected: {exc.message}") from None
        outgoing = await _build(ctx, client, request, url, host, method, first, keep_body)
        try:
            async with network.host_limits.slot(host, on_wait=ctx.waiting):
                response = await _receive(client, outgoing, limit, f"{method} {shown}")
        except httpx.TimeoutException as exc:
            raise TaskError(f"{method} {shown} timed out ({_describe(exc)})", "timeout") from None
        except httpx.UnsupportedProtocol as exc:
            raise ConfigError(f"{method} {shown}: {_describe(exc)}") from None
        except httpx.DecodingError as exc:
            raise TaskError(f"{method} {shown}: cannot decode the response: {exc}") from None
        except httpx.RequestError as exc:
            raise TaskError(f"{method} {shown} failed: {_describe(exc)}", "network") from None
        response = redacted(ctx, response)
        location = response.headers.get("location")
        if not (
            request.follow_redirects and location and response.status_code in REDIRECT_STATUSES
        ):
            reply = Reply(method, shown, response)
            check_status(reply, request.expect_status)
            return reply
        if hop == MAX_REDIRECTS:
            raise TaskError(
                f"{request.method} {request.url}: more than {MAX_REDIRECTS} redirects "
                f"(the last one to {location})"
            )
        url = urljoin(str(response.url), location)
        shown = urljoin(shown, location)
        ctx.log(f"{method} {response.status_code} redirect to {shown}")
        if (response.status_code == 303 and method != "HEAD") or (
            response.status_code in (301, 302) and method == "POST"
        ):
            method, keep_body = "GET", False
        first = False
    raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class ResponseLimit:
    """The most bytes a response body may have, and which setting says so (for the message)."""

    size: int
    server: int
    by_task: bool

    @classmethod
    def of(cls, server: int, request: Request) -> ResponseLimit:
        task = request.max_response_bytes
        if task is not None and task < server:
            return cls(task, server, True)
        return cls(server, server, False)

    def exceeded(self, label: str, declared: int | None = None) -> TaskError:
        size = f" ({show_bytes(declared)} declared)" if declared is not None else ""
        if self.by_task:
            how = (
                f"the task's max_response_bytes is {show_bytes(self.size)}; raise it (up to "
                f"ORCHESTRATOR_MAX_RESPONSE_BYTES, {show_bytes(self.server)})"
            )
        else:
            how = (
                f"the limit is ORCHESTRATOR_MAX_RESPONSE_BYTES, {show_bytes(self.size)}; raise "
                "it where the orchestrator runs to allow larger responses"
            )
        return TaskError(
            f"{label}: the response body is larger than {show_bytes(self.size)}{size} and was "
            f"not read further; {how}",
            "too_large",
        )


async def _receive(
    client: httpx.AsyncClient, outgoing: httpx.Request, limit: ResponseLimit, label: str
) -> httpx.Response:
    """Send ``outgoing`` and read the body as it streams, stopping as soon as it passes the
    limit (decoded bytes are counted, so a compressed body cannot expand past it either)."""
    response = await client.send(outgoing, stream=True)
    body = bytearray()
    try:
        declared = response.headers.get("content-length", "")
        encoded = "content-encoding" in response.headers
        if not encoded and declared.isdigit() and int(declared) > limit.size:
            raise limit.exceeded(label, int(declared))
        async for chunk in response.aiter_bytes():
            if len(body) + len(chunk) > limit.size:
                raise limit.exceeded(label)
            body += chunk
    finally:
        await response.aclose()
    dropped = ("content-encoding", "transfer-encoding") + (("content-length",) if encoded else ())
    return httpx.Response(
        response.status_code,
        headers=[(k, v) for k, v in response.headers.multi_items() if k.lower() not in dropped],
        content=bytes(body),
        request=response.request,
        extensions=response.extensions,
    )


def redacted(ctx: RunContext, response: httpx.Response) -> httpx.Response:
    """``response`` with every secret masked in its body and headers, before anything the
    document controls (``extract``, ``paginate``, a redirect's ``Location``, an artifact, an
    error excerpt) reads it: a server that echoes a secret cannot turn it into a form the
    redactor does not know, nor send it on to another host."""
    if isinstance(ctx.secrets, NoVault):
        return response
    content = response.content
    clean = redact_bytes(content, ctx.secrets.redact, response.encoding or "utf-8")
    headers = [(name, ctx.secrets.redact(value)) for name, value in response.headers.items()]
    if clean is content and headers == list(response.headers.items()):
        return response
    kept = [
        (name, value)
        for name, value in headers
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code,
        headers=kept,
        content=clean,
        request=response.request,
        extensions=response.extensions,
    )


async def _build(
    ctx: RunContext,
    client: httpx.AsyncClient,
    request: Request,
    url: str,
    host: str,
    method: str,
    first: bool,
    keep_body: bool,
) -> httpx.Request:
    """The request of one hop, with the secrets revealed for that hop's host."""

    async def reveal(text: str) -> str:
        return await ctx.reveal(text, host=host) if "${" in text else text

    params = None
    if first:
        url = await reveal(url)
        if (urlsplit(url).hostname or "").lower().rstrip(".") != host:
            raise ConfigError(f"{method} {request.url}: a secret cannot be part of a URL's host")
        params = await _reveal_all(request.params, reveal)
    headers = {name: await reveal(value) for name, value in request.headers.items()}
    if request.auth is not None:
        headers["Authorization"] = await _authorization(request.auth, reveal)
    for name, value in headers.items():
        if not value.isascii():  # httpx would fail with a bare UnicodeEncodeError
            raise ConfigError(
                f"{method} {request.url}: header {name} holds non-ASCII characters (a secret's "
                "value, once revealed?); HTTP header values must be ASCII: store the value "
                "percent- or base64-encoded, or send it in the body"
            )
    body = await _body(request, reveal) if keep_body else {}
    options: dict[str, Any] = dict(body)
    if request.timeout is not None:
        options["timeout"] = httpx.Timeout(request.timeout)
    try:
        return client.build_request(method, url, params=params, headers=headers, **options)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"{method} {request.url}: invalid URL ({exc})") from None


async def _authorization(auth: BearerAuth | BasicAuth, reveal: Reveal) -> str:
    if isinstance(auth, BearerAuth):
        return f"Bearer {await reveal(auth.token)}"
    pair = f"{await reveal(auth.username)}:{await reveal(auth.password)}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


Reveal = Callable[[str], Awaitable[str]]


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
                f"a form can only carry an object payload, not {_json_type(payload)}; "
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
            f"{_json_type(payload)}; set payload_field to put the payload under one key"
        )
    return {"json": {**payload, **fixed_json}}


def _form_value(value: Any) -> Any:
    """A form field's value: scalars as they are, anything else as JSON text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value)


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- reading the response -------------------------------------------------------------------


def check_status(reply: Reply, expected: tuple[int | str, ...]) -> None:
    """Raise the classed TaskError for a status ``expected`` does not accept."""
    status = reply.status
    if any(matcher(status) for matcher in map(status_matcher, expected) if matcher):
        return
    response = reply.response
    excerpt = body_excerpt(response)
    detail = f": {excerpt}" if excerpt else ""
    message = f"{reply.label} returned {status} {response.reason_phrase}".rstrip() + detail
    if status == 429:
        delay = retry_after_seconds(response.headers.get("retry-after"))
        if delay is not None:
            message += f" (Retry-After: {delay:g}s)"
        raise TaskError(message, "http_429", retry_after=delay)
    if status >= 500:
        raise TaskError(message, "http_5xx")
    if status >= 400:
        raise TaskError(message, "http_4xx")
    shown = ", ".join(str(pattern) for pattern in expected)
    raise TaskError(f"{message} (expected {shown})")


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def body_excerpt(response: httpx.Response) -> str:
    """The start of the body on one line, for error messages."""
    content = response.content
    if not content:
        return ""
    try:
        text = content.decode(response.encoding or "utf-8")
    except (UnicodeDecodeError, LookupError):
        return f"<{len(content)} bytes of {response.headers.get('content-type', 'data')}>"
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_LENGTH else flat[: EXCERPT_LENGTH - 1] + "…"


def safe_headers(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name] for name in SAFE_HEADERS if name in response.headers}


async def read_body(reply: Reply, kind: ResponseKind, ctx: RunContext) -> Any:
    """The body as ``kind`` says; ``bytes`` are saved as an artifact file."""
    response = reply.response
    if kind == "bytes":
        return await save_artifact(ctx, reply)
    if kind == "text":
        return response.text
    if not response.content.strip():
        return None
    try:
        data = json.loads(response.content)
    except RecursionError:
        raise _too_deep(reply) from None
    except ValueError:
        if kind == "auto":
            return response.text
        content_type = response.headers.get("content-type", "no content type")
        raise TaskError(
            f"{reply.label} returned {content_type}, not JSON: {body_excerpt(response)} "
            "(set response: text, or response: auto)"
        ) from None
    if nests_deeper(data, MAX_DATA_DEPTH):
        raise _too_deep(reply)
    return data


def _too_deep(reply: Reply) -> TaskError:
    return TaskError(
        f"{reply.label} returned JSON nested more than {MAX_DATA_DEPTH} levels deep; it is "
        "refused so that nothing walking it can exhaust the stack (set response: text to read "
        "it as text)",
        "too_deep",
    )


def extract(data: Any, expression: str | None) -> Any:
    if expression is None:
        return data
    return search(compile_jmespath(expression, "extract"), data)


def reply_output(reply: Reply, data: Any) -> dict[str, Any]:
    return {"status": reply.status, "headers": safe_headers(reply.response), "data": data}


async def save_artifact(ctx: RunContext, reply: Reply) -> dict[str, Any]:
    """Write the body into the run's artifacts folder (atomically); describe the file."""
    response = reply.response
    mime_type = response.headers.get("content-type", "application/octet-stream")
    mime_type = mime_type.split(";")[0].strip() or "application/octet-stream"
    base = Path(urlsplit(reply.shown_url).path).name
    if not Path(base).suffix:
        base = (base or "response") + (mimetypes.guess_extension(mime_type) or ".bin")
    name = _UNSAFE_FILE_CHARACTERS.sub("_", f"{ctx.task_id}-{base}").strip("._") or "response"
    path = ctx.artifacts_dir / name
    await asyncio.to_thread(write_atomic, path, response.content)
    ctx.log(f"saved {len(response.content)} bytes to artifact {name}")
    return {"artifact": name, "size": len(response.content), "mime_type": mime_type}


# --- the runner -----------------------------------------------------------------------------


class HttpRunner(Runner[HttpConfig]):
    """Sends the configured request (and its next pages); see the module docstring."""

    type_name: ClassVar[str] = "http"
    aliases: ClassVar[tuple[str, ...]] = ("api_call", "api")
    listing_rank: ClassVar[int] = 10
    config_model: ClassVar[type[HttpConfig]] = HttpConfig
    settings_model: ClassVar[type[HttpSettings]] = HttpSettings
    secret_fields: ClassVar[frozenset[str]] = frozenset(
        {"url", "params", "headers", "auth", "json", "body", "form"}
    )
    summary: ClassVar[str] = (
        "Calls an HTTP API: method, url, params, headers, a json/body/form body, bearer or "
        "basic auth from the vault, pagination, JMESPath extraction; 429 and 5xx are retryable."
    )
    example: ClassVar[dict[str, Any]] = {
        "id": "fetch_posts",
        "type": "http",
        "config": {
            "url": "https://api.example.org/posts",
            "params": {"per_page": 50},
            "headers": {"Accept": "application/json"},
            "extract": "[].{id: id, title: title}",
        },
        "retry": {"max_attempts": 3, "on": ["timeout", "network", "http_429", "http_5xx"]},
        "dependencies": [],
    }

    @property
    def max_response_bytes(self) -> int:
        return int(self.settings_as(HttpSettings).max_response_bytes)

    async def run(self, config: HttpConfig, ctx: RunContext) -> Any:
        body: dict[str, Any] = {}
        if "json_body" in config.model_fields_set:
            body["json"] = config.json_body
        elif config.body is not None:
            body["content"] = config.body
        elif config.form is not None:
            body["form"] = config.form
        request = Request.of(config, **body)
        if config.paginate is not None:
            return await self._pages(config, config.paginate, request, ctx)
        reply = await exchange(ctx, request, self.max_response_bytes)
        data = extract(await read_body(reply, config.response, ctx), config.extract)
        ctx.log(f"{reply.label} -> {reply.status}")
        return reply_output(reply, data)

    async def _pages(
        self, config: HttpConfig, paginate: Paginate, request: Request, ctx: RunContext
    ) -> dict[str, Any]:
        items_expression = (
            compile_jmespath(paginate.items, "paginate.items") if paginate.items else None
        )
        next_expression = (
            None if paginate.next == "link" else compile_jmespath(paginate.next, "paginate.next")
        )
        items: list[Any] = []
        seen = {request.url}
        pages = 0
        while True:
            reply = await exchange(ctx, request, self.max_response_bytes)
            pages += 1
            page = await read_body(reply, "json", ctx)
            found = search(items_expression, page) if items_expression else page
            if found is None:
                found = []
            if not isinstance(found, list):
                what = f"paginate.items '{paginate.items}'" if paginate.items else "the page"
                raise TaskError(
                    f"page {pages} ({reply.label}): {what} gave {_json_type(found)}, not a list"
                    + ("" if paginate.items else " (set paginate.items to select the items)")
                )
            items.extend(found)
            if next_expression is None:
                link = reply.response.links.get("next", {}).get("url")
            else:
                link = search(next_expression, page)
            if not link:
                break
            if not isinstance(link, str):
                raise TaskError(
                    f"page {pages} ({reply.label}): paginate.next gave {_json_type(link)}, "
                    "not a URL"
                )
            next_url = urljoin(str(reply.response.url), link)
            if next_url in seen:
                ctx.log(f"page {pages} links back to {next_url}; stopping", level="warning")
                break
            if pages >= paginate.max_pages:
                ctx.log(
                    f"stopped after max_pages ({paginate.max_pages}); more pages remain",
                    level="warning",
                )
                break
            seen.add(next_url)
            request = replace(request, url=next_url, params=None, literal_url=True)
        ctx.log(f"{pages} page(s), {len(items)} item(s)")
        return {**reply_output(reply, extract(items, config.extract)), "pages": pages}


RUNNER = HttpRunner
