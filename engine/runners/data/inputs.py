"""The data one task gives its action (``input`` or ``inputs``), and what an action is: a
function of the config and that data, returning the result and a line for the task's log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from multi_task_orchestrator.engine.errors import ConfigError
from multi_task_orchestrator.engine.runners.data.config import DataConfig
from multi_task_orchestrator.engine.runners.data.values import describe


class DataInput:
    """The data of one run, as the action needs it: a list, or the values as given."""

    def __init__(self, config: DataConfig) -> None:
        self.action = config.action
        self.several = config.inputs is not None
        self.values: list[Any] = config.inputs if config.inputs is not None else [config.input]

    def label(self, index: int) -> str:
        return f"inputs[{index}]" if self.several else "input"

    def as_list(self) -> list[Any]:
        """One list: the input, or the inputs concatenated; anything else is a config error."""
        if not self.several:
            (value,) = self.values
            if not isinstance(value, list):
                raise ConfigError(
                    f"action '{self.action}' needs a list, but 'input' is {describe(value)}; "
                    "point it at a list, e.g. '${task.output.items}'"
                )
            return value
        items: list[Any] = []
        for index, value in enumerate(self.values):
            if value is None:
                continue
            if not isinstance(value, list):
                raise ConfigError(
                    f"action '{self.action}' concatenates lists, but inputs[{index}] is "
                    f"{describe(value)}; point it at a list, e.g. '${{task.output.items}}'"
                )
            items.extend(value)
        return items


ActionFunction = Callable[[DataConfig, DataInput], tuple[Any, str]]
