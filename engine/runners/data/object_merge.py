"""How ``data_processing``'s ``merge`` combines objects without dropping a value unannounced.

Key by key: a key in one input is kept; objects under one key merge the same way; lists under
one key are concatenated; a value the inputs agree on is kept once. A key whose inputs hold
different values (two texts, a number and an object, ...) is a conflict, settled by the policy:

- ``collect`` keeps every value, in input order, in one list (a list already there is extended);
- ``error`` stops the merge with a message naming the key and the two inputs;
- ``first`` / ``last`` keep one input's value; lists count as values here (no concatenation),
  which is the plain "later inputs override" merge.

The merge reports which keys conflicted, so the task's log can name them.
"""

from __future__ import annotations

import json
import reprlib
from dataclasses import dataclass, field
from typing import Any, Literal

from multi_task_orchestrator.engine.errors import ConfigError

OnConflict = Literal["collect", "error", "first", "last"]
Path = tuple[str, ...]

_short = reprlib.Repr()
_short.maxstring = 40
_short.maxother = 40


def dotted(path: Path) -> str:
    """``("a", "b")`` -> ``a.b``: a key path as the log and errors show it."""
    return ".".join(path)


def _same(left: Any, right: Any) -> bool:
    if type(left) is not type(right):  # 1 and True, 1 and 1.0 differ in JSON
        return False
    return _canonical(left) == _canonical(right)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


@dataclass
class ObjectMerge:
    """Merges objects, one input after another, under one conflict policy."""

    on_conflict: OnConflict
    conflicts: list[Path] = field(default_factory=list)
    _origins: dict[Path, str] = field(default_factory=dict)

    def merge(self, inputs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        """The objects merged in order; each comes with its label (``inputs[2]``) for errors."""
        merged: dict[str, Any] = {}
        for label, value in inputs:
            merged = self._merge(merged, value, (), label)
        return merged

    def _merge(
        self, base: dict[str, Any], extra: dict[str, Any], path: Path, label: str
    ) -> dict[str, Any]:
        merged = dict(base)
        for key, value in extra.items():
            where = (*path, str(key))
            if key not in merged:
                merged[key] = value
                self._origins[where] = label
                continue
            current = merged[key]
            if isinstance(current, dict) and isinstance(value, dict):
                merged[key] = self._merge(current, value, where, label)
            elif self.on_conflict in ("collect", "error") and (
                isinstance(current, list) and isinstance(value, list)
            ):
                merged[key] = [*current, *value]
            elif not _same(current, value):
                merged[key] = self._settle(current, value, where, label)
        return merged

    def _settle(self, current: Any, value: Any, where: Path, label: str) -> Any:
        if where not in self.conflicts:
            self.conflicts.append(where)
        origin = next(
            (
                self._origins[where[:n]]
                for n in range(len(where), 0, -1)
                if where[:n] in self._origins
            ),
            "an earlier input",
        )
        self._origins[where] = label
        if self.on_conflict == "error":
            raise ConfigError(
                f"merge would lose data: '{dotted(where)}' is {_short.repr(current)} in "
                f"{origin} but {_short.repr(value)} in {label}; set on_conflict: collect to keep "
                "both, first or last to keep one, or point the inputs at the parts to merge"
            )
        if self.on_conflict == "first":
            return current
        if self.on_conflict == "last":
            return value
        collected = current if isinstance(current, list) else [current]
        return [*collected, *(value if isinstance(value, list) else [value])]
