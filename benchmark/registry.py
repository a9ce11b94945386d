"""One generic registry for strategies, backbones and datasets.

Entries are registered lazily as ``"module:attribute"`` strings together with a
one-line summary, so that listing names, validating suite files and skipping
finished cells never imports torch.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from benchmark.errors import ConfigError

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered name: where its object lives, what it is, and static facts about it."""

    name: str
    target: str
    summary: str
    info: dict[str, Any] = field(default_factory=dict)

    def load(self) -> T:
        module_name, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module_name), attribute)


class Registry(Generic[T]):
    """Name -> lazily imported object, with duplicate checks and "did you mean" errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._planned: dict[str, str] = {}

    def plan(self, names: list[str], why: str) -> None:
        """Names the papers use that alb will implement: invalid now, with a message saying so."""
        for name in names:
            self._planned[name] = why

    def planned(self) -> dict[str, str]:
        return {name: why for name, why in self._planned.items() if name not in self._entries}

    def register(self, name: str, target: str, summary: str, **info: Any) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        if ":" not in target:
            raise ValueError(f"{self.kind} '{name}': target must look like 'module:attribute'")
        self._entries[name] = Entry(name, target, summary, dict(info))

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[name] for name in self.names())

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(self.unknown_message(name)) from None

    def get(self, name: str) -> T:
        return self.entry(name).load()

    def unknown_message(self, name: str) -> str:
        allowed = ", ".join(self.names())
        if name in self.planned():
            return (f"{self.kind} '{name}' is not implemented in alb yet ({self.planned()[name]}); "
                    f"a cell that needs it cannot run. Implemented: {allowed}")
        return f"unknown {self.kind} '{name}'. Allowed: {allowed}.{did_you_mean(name, self.names())}"
