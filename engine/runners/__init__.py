"""Task runners, one module per task type, found by discovery.

A module in this package that defines ``RUNNER`` (a subclass of ``engine.runners.base.Runner``)
provides that task type; adding a task type means adding that module and its line in
``BUILTIN`` (or installing a distribution that declares one, see ``engine.registry``). Each
engine makes its own instances, so runners may hold clients or browsers for its lifetime.

``BUILTIN`` says, for each built-in type, which module holds its runner and what the registry
must know of it before that module is imported — its listing rank, its aliases and whether it
is opt-in — so that a command imports only the runners of the types it uses (a runner module
brings its config models, clients and loops: all of them took ~0.1 s). ``builtin()`` finds the
same runners by importing every module; tests/test_startup.py checks the two agree.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multi_task_orchestrator.engine.runners.base import Runner


@dataclass(frozen=True, slots=True)
class Builtin:
    """What the registry knows of a built-in type without importing its runner: the module
    (in this package) whose ``RUNNER`` it is and the runner's ``listing_rank``, ``aliases`` and
    whether it has an ``opt_in`` (which its settings may leave off)."""

    module: str
    listing_rank: int
    aliases: tuple[str, ...] = ()
    opt_in: bool = False

    def load(self) -> type[Runner]:
        """The runner class, its module imported (by ``__import__``, as an import statement
        does, so that ``python -X importtime`` lists it: ``importlib.import_module`` is not)."""
        module = __import__(f"{__name__}.{self.module}", fromlist=["RUNNER"])
        runner: type[Runner] = module.RUNNER
        return runner


BUILTIN: Mapping[str, Builtin] = MappingProxyType(
    {
        "http": Builtin("http", 10, ("api_call", "api")),
        "browser_automation": Builtin("browser", 20, ("browser",)),
        "llm": Builtin("llm", 25),
        "agent": Builtin("agent", 30),
        "data_processing": Builtin("data", 30, ("data",)),
        "file_processing": Builtin("files", 40, ("file", "files")),
        "email": Builtin("email", 45, ("mail",)),
        "multi_publish": Builtin("publish", 50, ("publish",)),
        "mcp": Builtin("mcp", 55, ("mcp_tool",)),
        "shell": Builtin("shell", 60, opt_in=True),
        "approval": Builtin("approval", 65),
        "delay": Builtin("delay", 70),
    }
)


def discover() -> dict[str, type[Runner]]:
    """Every runner class, built-in and plug-in, keyed by its task type (see the registry)."""
    from multi_task_orchestrator.engine.registry import runner_classes

    return dict(runner_classes())


def builtin() -> dict[str, type[Runner]]:
    """Every runner class in this package, keyed by its task type, found by importing each
    module (what ``BUILTIN`` must agree with)."""
    from multi_task_orchestrator.engine.runners.base import Runner

    runners: dict[str, type[Runner]] = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name.startswith("_") or module_info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        runner = getattr(module, "RUNNER", None)
        if isinstance(runner, type) and issubclass(runner, Runner):
            runners[runner.type_name] = runner
    return runners
