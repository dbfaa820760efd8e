"""Serving the stand-in: uvicorn on 127.0.0.1 and a free port, from a thread or in the running
loop; ``main`` serves it in the foreground."""

from __future__ import annotations

import time

from multi_task_orchestrator.server.loopback import LoopbackServer
from multi_task_orchestrator.server.standin_model.app import create_app
from multi_task_orchestrator.server.standin_model.state import NOTICE, StandinState


class StandinModel(LoopbackServer):
    """The stand-in served on 127.0.0.1 and a free port: from a thread (``with``, for a caller
    that blocks, such as a test running the CLI) or in the running loop (``async with``).
    ``url`` is the Anthropic ``base_url``; the OpenAI one is ``url + "/v1"``."""

    def __init__(
        self, *, keys: frozenset[str] | None = None, require_key: bool = True, port: int = 0
    ) -> None:
        self.state = StandinState(keys=keys, require_key=require_key)
        super().__init__(create_app(self.state), port=port, name="the stand-in model server")

    @property
    def banner(self) -> str:
        return (
            f"{NOTICE[0].upper()}{NOTICE[1:]}, at {self.url} (Anthropic base_url {self.url}, "
            f"OpenAI base_url {self.url}/v1); its answers are canned, not generated"
        )


def main(argv: list[str]) -> None:
    with StandinModel(port=int(argv[0]) if argv else 0, require_key=False) as model:
        print(model.banner, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
