"""Serving the stand-in: uvicorn on 127.0.0.1 and a free port, from a thread or in the running
loop; ``main`` serves it in the foreground."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn

from multi_task_orchestrator.server.standin_model.app import create_app
from multi_task_orchestrator.server.standin_model.state import NOTICE, StandinState


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
