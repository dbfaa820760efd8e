"""The ``http`` task's config models and the settings of the runners that send HTTP requests.

``RequestFields`` is what every request template has (the ``http`` task, each ``multi_publish``
destination); ``HttpConfig`` adds the body and pagination of an ``http`` task. Expressions
(``extract``, ``paginate``) and status patterns are checked here, at validation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import jmespath
from jmespath import exceptions as jmespath_errors
from pydantic import (
    BaseModel,
    BeforeValidator,
    ByteSize,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from multi_task_orchestrator.engine.document.units import Duration
from multi_task_orchestrator.engine.errors import ConfigError
from multi_task_orchestrator.engine.limits import (
    DEFAULT_MAX_RESPONSE_BYTES,
    compile_expression,
    jmespath_problem,
)
from multi_task_orchestrator.engine.runners.base import RunnerConfig

MAX_REDIRECTS = 10
_STATUS_RANGE = re.compile(r"^([1-5])xx$", re.IGNORECASE)
_STATUS_SPAN = re.compile(r"^(\d{3})\s*-\s*(\d{3})$")

Scalar = str | int | float | bool | None
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})


def _one_error(what: str, lists: bool) -> WrapValidator:
    """One error naming what a value may be, instead of one per member of its union."""

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            if isinstance(value, list):
                kind = "a list holding an object or a list" if lists else "a list"
            else:
                kind = "an object" if isinstance(value, dict) else type(value).__name__
            raise PydanticCustomError(
                "field_value",
                "{what}, not {kind}",
                {
                    "what": what,
                    "kind": kind,
                    "hint": "send structured data as a JSON body (json: {...}), or write it as "
                    "text",
                },
            ) from None

    return WrapValidator(validate)


QueryValue = Annotated[
    Scalar | list[Scalar],
    _one_error("a query value is text, a number, true, false, null or a list of them", True),
]
FormValue = Annotated[
    Scalar, _one_error("a form value is text, a number, true, false or null", False)
]
ResponseKind = Literal["json", "text", "bytes", "auto"]


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
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110's token


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


class OAuth2Auth(RunnerConfig):
    """An OAuth2 access token, fetched from ``token_url`` and cached in the vault (``oauth2``)."""

    type: Literal["oauth2"]
    token_url: str = Field(description="the token endpoint (http or https URL)")
    client_id: str
    client_secret: str | None = None
    refresh_token: str | None = Field(None, description="use the refresh_token grant with it")
    grant: Literal["client_credentials", "refresh_token"] | None = Field(
        None, description="client_credentials, or refresh_token (implied by refresh_token)"
    )
    scope: str | None = None

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, url: str) -> str:
        if "${" not in url and urlsplit(url.strip()).scheme.lower() not in ("http", "https"):
            raise _config_error(
                "url",
                "token_url '{url}' is not an http or https URL",
                "write the whole URL of the token endpoint, e.g. https://auth.example.org/token",
                url=url,
            )
        return url.strip()

    @model_validator(mode="after")
    def _one_grant(self) -> OAuth2Auth:
        if self.grant is None:
            self.grant = "refresh_token" if self.refresh_token is not None else None
        if self.grant is None:
            raise _config_error(
                "oauth2",
                "oauth2 needs refresh_token, or grant: client_credentials",
                "add refresh_token: ${vault.NAME}, or grant: client_credentials",
            )
        if self.grant == "refresh_token" and self.refresh_token is None:
            raise _config_error(
                "oauth2",
                "grant: refresh_token needs refresh_token",
                "add refresh_token: ${vault.NAME}",
            )
        if self.grant == "client_credentials" and self.refresh_token is not None:
            raise _config_error(
                "oauth2",
                "refresh_token goes with grant: refresh_token, not client_credentials",
                "remove grant (refresh_token implies it), or remove refresh_token",
            )
        return self


Auth = Annotated[BearerAuth | BasicAuth | OAuth2Auth, Field(discriminator="type")]


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
    params: dict[str, QueryValue] | None = Field(
        None, description="query parameters added to the URL"
    )
    headers: dict[str, HeaderValue] = Field(default_factory=dict, description="request headers")

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        for name in headers:
            if not HEADER_NAME.fullmatch(name):
                raise _config_error(
                    "header_name",
                    "'{name}' is not a header name",
                    "use letters, digits and !#$%&'*+-.^_`|~; a ${...} reference is replaced "
                    "in a header's value, not in its name",
                    name=name,
                )
            if name.lower() in _FRAMING_HEADERS:
                raise _config_error(
                    "header_name",
                    "'{name}' cannot be set: it is written from the body as it is sent",
                    "remove it; a body given as json, body or form gets its own",
                    name=name,
                )
        return headers

    auth: Auth | None = Field(
        None,
        description="{type: bearer, token: ...}, {type: basic, username: ..., password: ...} "
        "or {type: oauth2, token_url: ..., client_id: ..., client_secret: ..., refresh_token: "
        "... | grant: client_credentials, scope: ...}; values usually ${vault.NAME}",
    )
    timeout: Duration | None = Field(
        None, gt=0, description="limit on each request, its whole body included, e.g. 10s"
    )
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
    form: dict[str, FormValue] | None = Field(None, description="a form body (url-encoded fields)")
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
