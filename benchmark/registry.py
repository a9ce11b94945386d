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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from benchmark.errors import ConfigError

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


@dataclass(frozen=True)
class EpochFraction:
    """A default that is a fraction of the cell's training epochs, rounded (LL4AL: detach at 120 of 200)."""

    fraction: float

    def of(self, epochs: int) -> int:
        return round(self.fraction * epochs)


@dataclass(frozen=True)
class Requirement:
    """A setting a strategy cannot run without: null (auto) resolves to ``value``; any other value is an
    error that says ``why``."""

    setting: str  # dotted key of the cell configuration, e.g. "training.aux"
    value: Any
    why: str  # completes "strategy 'x' ...", e.g. "selects with the loss_prediction module"


@dataclass(frozen=True)
class StrategyInfo:
    """Static facts of a strategy.

    ``needs``: what it reads in a round (probs, embeddings, mc_dropout, network, labels, pseudo_labels, an
    auxiliary module ...). ``requires``: settings it cannot run without. ``defaults``: auto values of
    settings left null in the cells that use it, or that train its auxiliary module with another strategy
    (values: plain, or an :class:`EpochFraction`). Schedules name their two phase strategies.
    """

    kind: Literal["plain", "schedule", "initial"]
    needs: tuple[str, ...] = ()
    version: int = 1
    requires: tuple[Requirement, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    initial: str | None = None  # schedules: the strategy of the initial set
    rounds: str | None = None  # schedules: the strategy of every later round


@dataclass(frozen=True)
class BackboneInfo:
    """Static facts of a backbone. ``mc_dropout``: its dropout sites ("conv", "head") and their p for cells
    that need MC dropout (None: only the head site, see benchmark.models.mc_dropout_sites)."""

    min_image_size: int
    version: int = 1
    has_dropout: bool = False
    imagenet: bool = False  # benchmark.models.imagenet can load pre-trained weights for init: imagenet
    mc_dropout: Mapping[str, float] | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts of a registered dataset (balanced: every class has n_train // num_classes images)."""

    n_train: int
    n_test: int
    num_classes: int
    channels: int
    image_size: int
    crop_padding: int
    hflip: bool
    balanced: bool
    version: int = 1

    def facts(self) -> dict[str, Any]:
        """The facts as a dict, without the version."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "version"}


def shown_facts(info: StrategyInfo | BackboneInfo | DatasetInfo) -> str:
    """'kind=plain, needs=('probs',), version=1': the facts that are set (empty and null ones left out)."""
    def shown(value: Any) -> Any:
        if isinstance(value, tuple) and value and all(isinstance(v, Requirement) for v in value):
            return "{" + ", ".join(f"{r.setting}: {r.value}" for r in value) + "}"
        return value

    return ", ".join(f"{f.name}={shown(value)}" for f in dataclasses.fields(info)
                     if (value := getattr(info, f.name)) not in (None, (), {}))


I = TypeVar("I", StrategyInfo, BackboneInfo, DatasetInfo)  # noqa: E741


@dataclass(frozen=True)
class Entry(Generic[T, I]):
    """A registered name: where its object lives, what it is, and static facts about it."""

    name: str
    target: str
    summary: str
    info: I

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    def load(self) -> T:
        module_name, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module_name), attribute)


class Registry(Generic[T, I]):
    """Name -> lazily imported object, with duplicate checks and "did you mean" errors."""

    def __init__(self, kind: str, info_type: type[I]) -> None:
        self.kind = kind
        self.info_type = info_type
        self._entries: dict[str, Entry[T, I]] = {}

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

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T, I]]:
        return iter(self._entries[name] for name in self.names())

    def entry(self, name: str) -> Entry[T, I]:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(self.unknown_message(name)) from None

    def info(self, name: str) -> I:
        return self.entry(name).info

    def get(self, name: str) -> T:
        return self.entry(name).load()

    def unknown_message(self, name: str) -> str:
        allowed = ", ".join(self.names())
        return f"unknown {self.kind} '{name}'. Allowed: {allowed}.{did_you_mean(name, self.names())}"
