"""The static facts of strategies, backbones and datasets (:mod:`benchmark.registry` re-exports them).

A leaf module (dataclasses only), so that the registry and the plugin loader (benchmark.plugins) both use
these records without importing each other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# What a dataset asks of the cells that use it: classification (one label per image) or detection (boxes).
TASKS = ("classification", "detection")
Task = Literal["classification", "detection"]


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
    tasks: tuple[Task, ...] = ("classification",)  # the dataset tasks it can select for


@dataclass(frozen=True)
class BackboneInfo:
    """Static facts of a backbone. ``mc_dropout``: its dropout sites ("conv", "head") and their p for cells
    that need MC dropout (None: only the head site, see benchmark.models.mc_dropout_sites)."""

    min_image_size: int
    version: int = 1
    has_dropout: bool = False
    imagenet: bool = False  # benchmark.models.imagenet can load pre-trained weights for init: imagenet
    mc_dropout: Mapping[str, float] | None = None
    task: Task = "classification"  # detection: a detector (benchmark.detection.models), for detection datasets


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
    task: Task = "classification"  # detection: images with boxes (benchmark.detection); num_classes without background

    def facts(self) -> dict[str, Any]:
        """The facts as a dict, without the version."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "version"}
