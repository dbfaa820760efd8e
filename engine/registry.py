"""The runner registry: the one place that knows which task types exist and what they declare.

Runner classes come from the modules in ``engine/runners/`` and from installed distributions
that declare the entry-point group ``multi_task_orchestrator.runners`` (each entry point names a
``Runner`` subclass). Validation, the document schema, ``list_task_types``, the engine, the Dask
worker, the settings (each runner's ``settings_model``) and the README's task-type table ask
here; nothing else keeps a list of types. Runner modules import the document
models, so the runners are imported on the first question, never when this module loads.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multi_task_orchestrator.engine.runners.base import Runner

ENTRY_POINT_GROUP = "multi_task_orchestrator.runners"

log = logging.getLogger(__name__)


@functools.cache
def runner_classes() -> Mapping[str, type[Runner]]:
    """Every runner class, built-in and plug-in, keyed by task type, in discovery order."""
    from multi_task_orchestrator.engine.runners import builtin

    found = dict(builtin())
    spellings = {name for name in found} | {a for cls in found.values() for a in cls.aliases}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        runner = _load(entry_point)
        if runner is None:
            continue
        names = {runner.type_name, *runner.aliases}
        taken = sorted(names & spellings)
        if taken:
            log.warning(
                "plug-in runner %s (%s) ignored: %s already taken",
                entry_point.name,
                entry_point.value,
                ", ".join(taken),
            )
            continue
        found[runner.type_name] = runner
        spellings |= names
    return MappingProxyType(found)


def _load(entry_point: EntryPoint) -> type[Runner] | None:
    """The runner class an entry point names, or None (logged) when it is not one."""
    from multi_task_orchestrator.engine.runners.base import Runner

    try:
        runner = entry_point.load()
    except Exception as exc:  # a broken plug-in must not take the server down
        log.warning("plug-in runner %s could not be loaded: %s", entry_point.value, exc)
        return None
    if not (isinstance(runner, type) and issubclass(runner, Runner)):
        log.warning("plug-in runner %s is not a Runner subclass", entry_point.value)
        return None
    return runner


@functools.cache
def type_names() -> tuple[str, ...]:
    """The canonical task types, in listing order (``Runner.listing_rank``, then name)."""
    ordered = sorted(runner_classes().values(), key=lambda cls: (cls.listing_rank, cls.type_name))
    return tuple(cls.type_name for cls in ordered)


@functools.cache
def aliases() -> Mapping[str, str]:
    """Every alias, mapped to its canonical type. Cached, as ``runner_classes`` is: every
    task of every document asks (``canonical``), and building it took ~15 µs a time."""
    classes = runner_classes()
    return MappingProxyType(
        {alias.lower(): name for name in type_names() for alias in classes[name].aliases}
    )


def aliases_of(task_type: str) -> list[str]:
    """The aliases of one type, as its runner declares them."""
    runner = runner_classes().get(task_type)
    return list(runner.aliases) if runner else []


def canonical(name: str) -> str | None:
    """The canonical type for a name or alias (case and surrounding space ignored), or None."""
    key = name.strip().lower()
    key = aliases().get(key, key)
    return key if key in runner_classes() else None


def secret_fields() -> dict[str, frozenset[str]]:
    """Each type's config fields that may hold a ``${vault.NAME}``."""
    return {name: cls.secret_fields for name, cls in runner_classes().items()}


def error_classes() -> tuple[str, ...]:
    """The error classes runners declare beyond the built-in ones, sorted."""
    return tuple(sorted({c for cls in runner_classes().values() for c in cls.error_classes}))


def retried_by_default() -> frozenset[str]:
    """The runners' error classes that a ``retry`` without ``on`` retries."""
    return frozenset(c for cls in runner_classes().values() for c in cls.retried_by_default)


def budget_types() -> tuple[str, ...]:
    """The task types whose runners call models (``Runner.spends_budget``), in listing order."""
    classes = runner_classes()
    return tuple(name for name in type_names() if classes[name].spends_budget)
