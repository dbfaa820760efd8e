"""Problems found in an orchestration document, each with where it is and how to fix it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Literal

Severity = Literal["error", "warning"]
Location = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem in a document: what is wrong, where, and what to do about it."""

    message: str
    loc: Location = ()
    hint: str | None = None
    line: int | None = None
    column: int | None = None
    severity: Severity = "error"

    @property
    def path(self) -> str:
        """The location as a readable path, e.g. ``tasks[2].dependencies[0]``."""
        return format_loc(self.loc)

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}: " if self.line is not None else ""
        path = f"{self.path}: " if self.loc else ""
        hint = f" ({self.hint})" if self.hint else ""
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{prefix}{where}{path}{self.message}{hint}"


class DocumentError(Exception):
    """Raised when a document cannot be used; carries every problem found, not just the first."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = [issue for issue in issues if issue.severity == "error"] or list(issues)
        count = len(self.issues)
        lines = "\n".join(f"- {issue}" for issue in self.issues)
        super().__init__(f"the orchestration document has {count} problem(s):\n{lines}")


def format_loc(loc: Iterable[str | int]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A 'did you mean' hint for a misspelt name, or None when nothing is close."""
    matches = get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None
