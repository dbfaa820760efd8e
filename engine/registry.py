"""The runner registry: the one place that knows which task types exist and what they declare.

Runner classes come from the modules in ``engine/runners/`` and from installed distributions
that declare the entry-point group ``multi_task_orchestrator.runners`` (each entry point names a
``Runner`` subclass). Validation, the document schema, ``list_task_types``, the engine, the Dask
worker, the settings (each runner's ``settings_model``) and the README's task-type table ask
here; nothing else keeps a list of types. Runner modules import the document
models, so the runners are imported on the first question, never when this module loads; and a
built-in runner's module is imported only when its class is asked for (``Runners``): the names,
order and aliases of the built-in types come from ``engine.runners.BUILTIN``, so checking a
document imports the runners of the types it uses, not every runner.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Mapping
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import TYPE_CHECKING

from multi_task_orchestrator.engine.runners import BUILTIN, Builtin

if TYPE_CHECKING:
    from multi_task_orchestrator.engine.runners.base import Runner

ENTRY_POINT_GROUP = "multi_task_orchestrator.runners"

log = logging.getLogger(__name__)


class Runners(Mapping[str, type["Runner"]]):
    """Every runner class by task type, in discovery order: the built-in ones (``BUILTIN``),
    each imported when it is first asked for, then the plug-ins (already loaded). Iterating
    over the keys imports nothing; over the values or items, every runner."""

    def __init__(self, builtin: Mapping[str, Builtin], plugins: Mapping[str, type[Runner]]):
        self._builtin = dict(builtin)
        self._loaded: dict[str, type[Runner]] = dict(plugins)
        self._names = [*self._builtin, *plugins]

    def __getitem__(self, name: str) -> type[Runner]:
        runner = self._loaded.get(name)
        if runner is None:
            declared = self._builtin[name]  # KeyError for an unknown type, as a dict gives
            runner = self._loaded[name] = declared.load()
        return runner

    def __contains__(self, name: object) -> bool:
        return name in self._builtin or name in self._loaded

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def declared(self, name: str) -> Builtin:
        """What is known of a type's runner before it is imported (``declared``)."""
        builtin = self._builtin.get(name)
        return builtin if builtin is not None else _declared_by(self[name])


@functools.cache
def runner_classes() -> Runners:
    """Every runner class, built-in and plug-in, keyed by task type, in discovery order."""
    spellings = {name for name in BUILTIN} | {a for b in BUILTIN.values() for a in b.aliases}
    plugins: dict[str, type[Runner]] = {}
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
        plugins[runner.type_name] = runner
        spellings |= names
    return Runners(BUILTIN, plugins)


def declared(classes: Mapping[str, type[Runner]], name: str) -> Builtin:
    """A type's listing rank, aliases and whether it is opt-in (its runner, made with its
    settings, may be off), without importing a built-in runner for them (``Runners``); from
    the class itself in any other mapping of runner classes."""
    if isinstance(classes, Runners):
        return classes.declared(name)
    return _declared_by(classes[name])


def _declared_by(runner: type[Runner]) -> Builtin:
    """The same facts read from a runner class (loaded already: its module is not to load)."""
    opt_in = runner.opt_in is not None
    return Builtin(runner.__module__, runner.listing_rank, runner.aliases, opt_in)


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
    classes = runner_classes()
    return tuple(sorted(classes, key=lambda name: (declared(classes, name).listing_rank, name)))


@functools.cache
def aliases() -> Mapping[str, str]:
    """Every alias, mapped to its canonical type. Cached, as ``runner_classes`` is: every
    task of every document asks (``canonical``), and building it took ~15 µs a time."""
    classes = runner_classes()
    return MappingProxyType(
        {alias.lower(): name for name in type_names() for alias in declared(classes, name).aliases}
    )


def aliases_of(task_type: str) -> list[str]:
    """The aliases of one type, as its runner declares them."""
    classes = runner_classes()
    return list(declared(classes, task_type).aliases) if task_type in classes else []


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
