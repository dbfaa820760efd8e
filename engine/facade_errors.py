"""What the engine answers a request that names nothing it knows, or that does not fit the
orchestration's state now; the CLI and the tools turn these into their messages."""

from __future__ import annotations


class RequestError(Exception):
    """A request the engine refuses, its message saying why and what to do instead: the CLI
    prints it (exit code 2), the tools return it as their error. Each kind below is one."""


def shown_id(text: str, limit: int = 60) -> str:
    """An id as a message quotes it: cut to ``limit`` characters (an id is far shorter; a
    mistaken long text is not sent back whole)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class UnknownOrchestration(RequestError, LookupError):
    """No orchestration has that id; the message lists recent ones."""

    def __init__(
        self, orchestration_id: str, recent: list[str], *, problem: str | None = None
    ) -> None:
        listing = ", ".join(recent) if recent else "none yet"
        label = "matching ids" if problem else "recent ids"
        problem = problem or f"no orchestration has the id '{shown_id(orchestration_id)}'"
        super().__init__(f"{problem}; {label}: {listing}")
        self.orchestration_id = orchestration_id
        self.recent = recent


class UnknownTask(RequestError, LookupError):
    """The orchestration has no task with that id."""


class NotAllowedNow(RequestError):
    """The request does not fit the orchestration's state; the message says why and what to do."""


class IdempotencyConflict(NotAllowedNow):
    """The idempotency key already started a run of another document."""

    def __init__(self, key: str, orchestration_id: str, fields: list[str]) -> None:
        super().__init__(
            f"idempotency key '{key}' already started orchestration {orchestration_id} with a "
            f"different document (they differ in: {', '.join(fields)}). Submit this document "
            f"with a new idempotency key, or follow {orchestration_id} with "
            f"get_status(id='{orchestration_id}')."
        )
        self.orchestration_id = orchestration_id
        self.fields = fields
