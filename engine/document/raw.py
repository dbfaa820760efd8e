"""A loaded, unvalidated document, and where each of its values is in the source text.

Where the values are matters only for reporting a problem, so it is worked out when first asked,
by reading the text again with ``hardened_yaml`` (JSON is YAML, mostly): a document without
problems is read once, at the speed of reading it.
"""

from __future__ import annotations

from typing import Any

from multi_task_orchestrator.engine.issues import DocumentError, Issue, Location

Positions = dict[Location, tuple[int, int]]


class RawDocument:
    """A loaded but unvalidated document, with the (line, column) of its values in the source:
    given, or found in ``text`` when first asked."""

    __slots__ = ("_depth", "_inside", "_positions", "_text", "data", "source_name")

    def __init__(
        self,
        data: Any,
        positions: Positions | None = None,
        source_name: str = "<document>",
        *,
        text: str | None = None,
        max_depth: int = 64,
    ) -> None:
        self.data = data
        self.source_name = source_name
        self._positions = positions
        self._text = text if positions is None else None
        self._depth = max_depth  # the nesting ``text`` was loaded within
        self._inside: Location = ()  # where ``data`` is in the text's document

    @property
    def positions(self) -> Positions:
        """The (line, column) of each value by its location, where the source gives one."""
        if self._positions is None:
            found = positions_in(self._text, self._depth) if self._text is not None else {}
            self._positions = _within(found, self._inside)
            self._text = None
        return self._positions

    @positions.setter
    def positions(self, positions: Positions) -> None:
        self._positions, self._text = positions, None

    def descend(self, key: str) -> None:
        """Make the value at ``key`` the document (the ``orchestration:`` wrapper taken off)."""
        self.data = self.data[key]
        if self._positions is None:
            self._inside = (*self._inside, key)
        else:
            self._positions = _within(self._positions, (key,))

    def position(self, loc: Location) -> tuple[int, int] | None:
        """The (line, column) of the value at ``loc``, or of its nearest enclosing value."""
        positions = self.positions
        for end in range(len(loc), -1, -1):
            found = positions.get(tuple(loc[:end]))
            if found:
                return found
        return None

    def issue(self, message: str, loc: Location = (), hint: str | None = None, **kw: Any) -> Issue:
        line, column = self.position(loc) or (None, None)
        return Issue(message, loc, hint, line, column, **kw)


def positions_in(text: str, max_depth: int) -> Positions:
    """Where each value of ``text`` sits; none if YAML cannot read it (JSON that YAML cannot)."""
    import yaml

    from multi_task_orchestrator.engine.document.hardened_yaml import compose, index_positions

    positions: Positions = {}
    try:
        loader, node = compose(text, max_depth)
        loader.dispose()
    except (yaml.YAMLError, DocumentError, RecursionError, ValueError):
        return positions
    if node is not None:
        index_positions(node, positions)
    return positions


def _within(positions: Positions, inside: Location) -> Positions:
    if not inside:
        return positions
    size = len(inside)
    return {loc[size:]: pos for loc, pos in positions.items() if loc[:size] == inside}
