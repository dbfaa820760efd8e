"""Task runners, one module per task type, found by discovery.

A module in this package that defines ``RUNNER`` (a subclass of ``engine.runners.base.Runner``)
provides that task type; adding a task type means adding one module and nothing else (or
installing a distribution that declares one, see ``engine.registry``). Each engine makes its own
instances, so runners may hold clients or browsers for its lifetime.
"""

from __future__ import annotations

import importlib
import pkgutil

from multi_task_orchestrator.engine.runners.base import Runner


def discover() -> dict[str, type[Runner]]:
    """Every runner class, built-in and plug-in, keyed by its task type (see the registry)."""
    from multi_task_orchestrator.engine.registry import runner_classes

    return dict(runner_classes())


def builtin() -> dict[str, type[Runner]]:
    """Every runner class in this package, keyed by its task type."""
    runners: dict[str, type[Runner]] = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name.startswith("_") or module_info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        runner = getattr(module, "RUNNER", None)
        if isinstance(runner, type) and issubclass(runner, Runner):
            runners[runner.type_name] = runner
    return runners
