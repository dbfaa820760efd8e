"""A local stand-in model server: Anthropic's and OpenAI's wire formats on 127.0.0.1, no model.

It answers ``POST /v1/messages`` (Anthropic Messages) and ``POST /v1/chat/completions`` (OpenAI
chat completions; also without ``/v1``), non-streaming, deterministically from the prompt: a
short text that says it comes from a local stand-in and quotes the prompt's first words; or,
when the conversation asks for JSON, a JSON value that satisfies simple schemas (object,
properties, required, string, integer, number, boolean, array, enum) found after "JSON Schema:"
in it. It checks the auth header's shape (``x-api-key`` or ``Authorization: Bearer``; with
``keys``, the key itself), counts tokens as about four characters each, and honours
``max_tokens`` (cutting the answer, stop reason ``max_tokens`` / ``length``).

The offline demo and the tests use it in place of a provider. Knobs, from Python
(``StandinModel.state``) or ``POST /_standin/control`` (``{"fail": {"count": 2, "status": 429,
"retry_after": 1}, "invalid_json": 1}``): fail the next calls with a status (429 with
``retry-after``, Anthropic's 529 overloaded, 5xx), answer the next calls with invalid JSON.
Every call is recorded (path, headers, body) in ``state.requests``, to show where a key went.

``python -m multi_task_orchestrator.server.standin_model [PORT]`` serves it in the foreground.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

NOTICE = "local stand-in model, not a real one"
_SCHEMA_MARKER = "JSON Schema:"
_WORD = re.compile(r"[\w'-]+")


@dataclass
class Fault:
    """One call to fail: with this status and, when given, a ``retry-after`` header."""

    status: int
    retry_after: float | None = None


@dataclass
class StandinState:
    """What the server has been told and has seen; written on the server's thread."""

    keys: frozenset[str] | None = None  # the keys accepted; None: any key of the right shape
    require_key: bool = True
    faults: deque[Fault] = field(default_factory=deque)
    invalid_answers: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)

    def fail_next(
        self, count: int = 1, status: int = 429, retry_after: float | None = None
    ) -> None:
        """Fail the next ``count`` calls with ``status``."""
        self.faults.extend(Fault(status, retry_after) for _ in range(count))

    def answer_invalid_json_next(self, count: int = 1) -> None:
        """Answer the next ``count`` calls that ask for JSON with something that is not."""
        self.invalid_answers += count

    def calls(self, path: str | None = None) -> list[dict[str, Any]]:
        """The model calls received (control requests left out), optionally at one path."""
        return [
            r
            for r in list(self.requests)
            if not r["path"].startswith("/_standin") and (path is None or r["path"] == path)
        ]


# --- answers ----------------------------------------------------------------------------------


def tokens(text: str) -> int:
    """About four characters a token, as the providers' tokenizers average on English."""
    return max(1, math.ceil(len(text) / 4))


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or a list of blocks with ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


def _schema_in(text: str) -> dict[str, Any] | None:
    """The JSON object after the last "JSON Schema:" in ``text``, if any."""
    at = text.rfind(_SCHEMA_MARKER)
    start = text.find("{", at) if at >= 0 else -1
    if start < 0:
        return None
    try:
        schema, _ = json.JSONDecoder().raw_decode(text, start)
    except ValueError:
        return None
    return schema if isinstance(schema, dict) else None


def _value_for(schema: Any, name: str, words: list[str]) -> Any:
    """A value satisfying the simple ``schema``, made from the prompt's ``words``."""
    if not isinstance(schema, dict):
        return f"stand-in {name}"
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {key: _value_for(sub, key, words) for key, sub in properties.items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 0)), min(2, int(schema.get("maxItems", 2))))
        items = schema.get("items", {"type": "string"})
        return [_value_for(items, f"{name} {i + 1}", words[i:]) for i in range(count)]
    if kind == "integer":
        return max(int(schema.get("minimum", 0)), len(words))
    if kind == "number":
        return float(max(schema.get("minimum", 0), len(words)))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string_for(schema, name, words)


def _string_for(schema: dict[str, Any], name: str, words: list[str]) -> str:
    lead = " ".join(words[:6]) or "nothing"
    if name == "slug":
        text = "-".join(w.lower() for w in words[:6]) or "stand-in"
    elif name in ("title", "headline", "name"):
        text = f"Stand-in: {lead}"
    else:
        text = f"Stand-in {name} about: {lead}"
    minimum, maximum = int(schema.get("minLength", 0)), schema.get("maxLength")
    text = text.ljust(minimum, ".")
    return text[: int(maximum)] if maximum is not None else text


def answer_for(conversation: str, prompt: str, *, invalid: bool) -> str:
    """The answer to ``conversation`` (every text sent) whose first user message is ``prompt``."""
    words = _WORD.findall(prompt)
    if "JSON" not in conversation:
        quoted = " ".join(words[:12])
        more = "…" if len(words) > 12 else ""
        return f'[{NOTICE}] You asked: "{quoted}{more}". This text comes from a {NOTICE}.'
    if invalid:
        return f'Here is the JSON ({NOTICE}): {{"answer": "unfinished'
    schema = _schema_in(conversation)
    if schema is None:
        value: Any = {"answer": f"Stand-in answer about: {' '.join(words[:6])}", "stand_in": True}
    else:
        value = _value_for(schema, "answer", words)
    return json.dumps(value, ensure_ascii=False)


def _cut(answer: str, max_tokens: Any) -> tuple[str, bool]:
    """``answer`` cut to ``max_tokens`` (about four characters each); whether it was cut."""
    if isinstance(max_tokens, int) and tokens(answer) > max_tokens:
        return answer[: max_tokens * 4], True
    return answer, False


# --- the two wire formats ---------------------------------------------------------------------


def _anthropic_error(status: int, kind: str, message: str, **headers: str) -> JSONResponse:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _openai_error(status: int, kind: str, message: str, **headers: str) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
    return JSONResponse(body, status_code=status, headers=headers)


_FAULT_KINDS = {429: "rate_limit_error", 529: "overloaded_error"}


def _fault(fault: Fault, openai: bool) -> JSONResponse:
    kind = _FAULT_KINDS.get(fault.status, "api_error")
    headers = {"retry-after": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
    message = f"{NOTICE}: failing this call on purpose with {fault.status}"
    make = _openai_error if openai else _anthropic_error
    return make(fault.status, kind, message, **headers)


def create_app(state: StandinState) -> Starlette:
    """The Starlette app over ``state``."""

    async def received(request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"unparsed": raw.decode("utf-8", "replace")}
        state.requests.append(
            {"path": request.url.path, "headers": dict(request.headers), "body": body}
        )
        return body if isinstance(body, dict) else {}

    def key_refused(given: str | None, openai: bool) -> JSONResponse | None:
        make = _openai_error if openai else _anthropic_error
        kind = "invalid_api_key" if openai else "authentication_error"
        if not given:
            if not state.require_key:
                return None
            what = "Authorization: Bearer KEY" if openai else "x-api-key"
            return make(401, kind, f"{NOTICE}: the {what} header is required")
        if state.keys is not None and given not in state.keys:
            return make(401, kind, f"{NOTICE}: invalid API key")
        return None

    async def messages(request: Request) -> Response:
        body = await received(request)
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        refused = key_refused(request.headers.get("x-api-key") or bearer or None, False)
        if refused is not None:
            return refused
        if "anthropic-version" not in request.headers:
            return _anthropic_error(400, "invalid_request_error", "anthropic-version is required")
        turns = body.get("messages")
        if not body.get("model") or not isinstance(turns, list) or "max_tokens" not in body:
            return _anthropic_error(
                400, "invalid_request_error", "model, messages and max_tokens are required"
            )
        if state.faults:
            return _fault(state.faults.popleft(), False)
        texts = [_text_of(body.get("system"))] + [_text_of(t.get("content")) for t in turns]
        prompt = next((_text_of(t.get("content")) for t in turns if t.get("role") == "user"), "")
        answer, cut = _cut(_answer(state, "\n".join(texts), prompt), body["max_tokens"])
        return JSONResponse(
            {
                "id": f"msg_standin_{len(state.requests)}",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": answer}],
                "stop_reason": "max_tokens" if cut else "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": tokens("\n".join(texts)),
                    "output_tokens": tokens(answer),
                },
            }
        )

    async def chat_completions(request: Request) -> Response:
        body = await received(request)
        authorization = request.headers.get("authorization", "")
        if authorization and not authorization.startswith("Bearer "):
            return _openai_error(401, "invalid_api_key", f"{NOTICE}: use Authorization: Bearer")
        refused = key_refused(authorization.removeprefix("Bearer ").strip() or None, True)
        if refused is not None:
            return refused
        turns = body.get("messages")
        if not body.get("model") or not isinstance(turns, list):
            return _openai_error(400, "invalid_request_error", "model and messages are required")
        if state.faults:
            return _fault(state.faults.popleft(), True)
        texts = [_text_of(t.get("content")) for t in turns]
        prompt = next((_text_of(t.get("content")) for t in turns if t.get("role") == "user"), "")
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        answer, cut = _cut(_answer(state, "\n".join(texts), prompt), limit)
        prompt_tokens, completion_tokens = tokens("\n".join(texts)), tokens(answer)
        return JSONResponse(
            {
                "id": f"chatcmpl-standin-{len(state.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "length" if cut else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    async def control(request: Request) -> Response:
        body = await received(request)
        fail = body.get("fail")
        if isinstance(fail, dict):
            state.fail_next(
                int(fail.get("count", 1)), int(fail.get("status", 429)), fail.get("retry_after")
            )
        if "invalid_json" in body:
            state.answer_invalid_json_next(int(body["invalid_json"]))
        return JSONResponse({"faults": len(state.faults), "invalid_json": state.invalid_answers})

    return Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/chat/completions", chat_completions, methods=["POST"]),
            Route("/_standin/control", control, methods=["POST"]),
        ]
    )


def _answer(state: StandinState, conversation: str, prompt: str) -> str:
    invalid = "JSON" in conversation and state.invalid_answers > 0
    if invalid:
        state.invalid_answers -= 1
    return answer_for(conversation, prompt, invalid=invalid)


# --- serving ----------------------------------------------------------------------------------


class StandinModel:
    """The app served by uvicorn on 127.0.0.1 and a free port: from a thread (``with``, for a
    caller that blocks, such as a test running the CLI) or in the running loop (``async with``)."""

    def __init__(
        self, *, keys: frozenset[str] | None = None, require_key: bool = True, port: int = 0
    ) -> None:
        self.state = StandinState(keys=keys, require_key=require_key)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.state), log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The Anthropic ``base_url``; the OpenAI one is ``url + "/v1"``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def banner(self) -> str:
        return (
            f"{NOTICE[0].upper()}{NOTICE[1:]}, at {self.url} (Anthropic base_url {self.url}, "
            f"OpenAI base_url {self.url}/v1); its answers are canned, not generated"
        )

    def __enter__(self) -> StandinModel:
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the stand-in model server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._socket.close()

    async def __aenter__(self) -> StandinModel:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._socket.close()


def main(argv: list[str]) -> None:
    with StandinModel(port=int(argv[0]) if argv else 0, require_key=False) as model:
        print(model.banner, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main(sys.argv[1:])
