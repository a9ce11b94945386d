"""The plugins of a suite's cells, loaded and checked before any cell runs (``alb run``).

Apart from :mod:`benchmark.plugins` because it reads the registries of strategies, backbones and datasets,
which themselves load plugins through that module: together they would import each other.
"""

from __future__ import annotations

from typing import Any

from benchmark.data import DATASETS
from benchmark.models import BACKBONES
from benchmark.strategies import STRATEGIES


def check_cells(cells: list[Any]) -> None:
    """Load and check the plugin objects the given cells run (``alb run``, before any cell starts): a broken
    plugin is one error up front, not one failed cell each."""
    seen: set[tuple[str, str]] = set()
    for cell in cells:
        c = cell.config
        for registry, name in ((STRATEGIES, c.strategy), (STRATEGIES, c.initial_strategy),
                               (BACKBONES, c.backbone), (DATASETS, c.dataset)):
            if name is None or (registry.kind, name) in seen or name not in registry:
                continue
            seen.add((registry.kind, name))
            if registry.entry(name).origin is not None:
                registry.get(name)
