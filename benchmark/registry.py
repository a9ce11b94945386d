"""One generic registry for strategies, backbones and datasets, with typed facts per kind.

Entries are registered lazily as ``"module:attribute"`` strings together with a
one-line summary and a frozen record of static facts (:class:`StrategyInfo`,
:class:`BackboneInfo`, :class:`DatasetInfo`), so that listing names, validating
suite files and skipping finished cells never imports torch. Every record has a
``version``: bump it when the component's behaviour changes, which changes the ids
of the cells that use it (see benchmark/versions.py).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from benchmark.component_info import TASKS as TASKS
from benchmark.component_info import BackboneInfo, DatasetInfo, EpochFraction, Requirement, StrategyInfo, Task
from benchmark.errors import ConfigError

if TYPE_CHECKING:
    from benchmark.plugins import Origin

__all__ = ["TASKS", "BackboneInfo", "DatasetInfo", "Entry", "EpochFraction", "Registry", "Requirement", "StrategyInfo",
           "Task", "did_you_mean", "shown_facts"]

T = TypeVar("T")



def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def shown_facts(info: StrategyInfo | BackboneInfo | DatasetInfo) -> str:
    """'kind=plain, needs=('probs',), version=1': the facts that are set (empty and null ones left out)."""
    def shown(value: Any) -> Any:
        if isinstance(value, tuple) and value and all(isinstance(v, Requirement) for v in value):
            return "{" + ", ".join(f"{r.setting}: {r.value}" for r in value) + "}"
        return value

    return ", ".join(f"{f.name}={shown(value)}" for f in dataclasses.fields(info)
                     if (value := getattr(info, f.name)) not in (None, (), {})
                     and not (f.name in ("task", "tasks") and value == f.default))  # classification only: unsaid


I = TypeVar("I", StrategyInfo, BackboneInfo, DatasetInfo)  # noqa: E741


@dataclass(frozen=True)
class Entry(Generic[T, I]):
    """A registered name: where its object lives, what it is, and static facts about it."""

    name: str
    target: str
    summary: str
    info: I
    origin: Origin | None = None  # None: alb's own; else the plugin's distribution and sources (benchmark.plugins)

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    def load(self) -> T:
        module_name, _, attribute = self.target.partition(":")
        if self.origin is None:
            return getattr(importlib.import_module(module_name), attribute)  # type: ignore[no-any-return]
        try:  # a plugin's import error names the plugin, never a traceback
            obj: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                obj = getattr(obj, part)
        except Exception as exc:
            raise ConfigError(f"plugin '{self.name}' ({self.origin.label()}): cannot load {self.target} "
                              f"({type(exc).__name__}: {exc})") from None
        return obj  # type: ignore[no-any-return]


class Registry(Generic[T, I]):
    """Name -> lazily imported object, with duplicate checks and "did you mean" errors.

    alb's own entries are registered when their package is imported; plugins (benchmark.plugins) join on first
    use: the entry points of the kind's group, and ``module.path:Attribute`` names when they are looked up."""

    def __init__(self, kind: str, info_type: type[I]) -> None:
        self.kind = kind
        self.info_type = info_type
        self._entries: dict[str, Entry[T, I]] = {}
        self._problems: dict[str, str] = {}  # plugin name -> why it cannot be used
        self._discovered = False

    def register(self, name: str, target: str, summary: str, info: I) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        if ":" not in target:
            raise ValueError(f"{self.kind} '{name}': target must look like 'module:attribute'")
        if not isinstance(info, self.info_type):
            raise TypeError(f"{self.kind} '{name}': facts must be a {self.info_type.__name__}")
        if not isinstance(info.version, int) or info.version < 1:
            raise ValueError(f"{self.kind} '{name}': version must be a positive int, got {info.version!r}")
        self._entries[name] = Entry(name, target, summary, info)

    # ---- plugins

    def _add_plugin(self, name: str, load: Any) -> None:
        """Register the plugin ``load()`` returns as (Declaration, Origin), or remember why it cannot be used."""
        from benchmark import plugins

        try:
            declaration, origin = load()
            problem = plugins.facts_problem(self.kind, declaration)
            if problem is None and name in self._entries:
                problem = f"its name is taken by {self._entries[name].target}; rename it in the entry point"
        except ConfigError as exc:
            self._problems[name] = str(exc)
            return
        if problem is not None:
            self._problems[name] = f"{self.kind} plugin '{name}' ({origin.label()}): {problem}"
            return
        self._entries[name] = Entry(name, declaration.target, declaration.summary, declaration.info,
                                    origin)  # type: ignore[arg-type]

    def discover(self) -> None:
        """Load the declarations of the kind's entry points (once per process)."""
        if self._discovered:
            return
        self._discovered = True
        from benchmark import plugins

        for ep in plugins.entry_points(self.kind):
            self._add_plugin(ep.name, lambda ep=ep: plugins.from_entry_point(self.kind, ep))

    def _lookup(self, name: object) -> bool:
        if name in self._entries:
            return True
        if not isinstance(name, str):
            return False
        self.discover()
        if name not in self._entries and name not in self._problems:
            from benchmark import plugins

            if plugins.REFERENCE.match(name):
                self._add_plugin(name, lambda: plugins.from_reference(self.kind, name))
        return name in self._entries

    def problems(self) -> dict[str, str]:
        """Plugins that were found but cannot be used, with the reason."""
        self.discover()
        return dict(self._problems)

    # ---- lookups

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return self._lookup(name)

    def __iter__(self) -> Iterator[Entry[T, I]]:
        return iter(self._entries[name] for name in self.names())

    def entry(self, name: str) -> Entry[T, I]:
        if not self._lookup(name):
            raise ConfigError(self.unknown_message(name))
        return self._entries[name]

    def info(self, name: str) -> I:
        return self.entry(name).info

    def get(self, name: str) -> T:
        entry = self.entry(name)
        obj = entry.load()
        if entry.origin is not None:
            from benchmark.plugins import check_target

            check_target(self.kind, name, obj, entry.origin)
        return obj

    def unknown_message(self, name: str) -> str:
        if self._lookup(name):
            return f"{self.kind} '{name}' is registered"
        if name in self._problems:
            return self._problems[name]
        from benchmark.plugins import ENTRY_POINT_GROUPS

        allowed = ", ".join(self.names())
        return (f"unknown {self.kind} '{name}'. Allowed: {allowed}.{did_you_mean(name, self.names())} "
                f"A {self.kind} of another package is named 'module.path:Attribute' or registered by its entry "
                f"point (group {ENTRY_POINT_GROUPS.get(self.kind, 'alb.*')}; see README 'Write your own strategy').")
