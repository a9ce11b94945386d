"""Random sampling, the baseline every strategy must beat."""

from __future__ import annotations

import numpy as np

from benchmark.strategies.base import SelectionContext, Strategy


def random_selection(unlabeled: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    k = min(budget, len(unlabeled))
    return np.sort(rng.choice(unlabeled, size=k, replace=False)).astype(np.int64)


class RandomSampling(Strategy):
    name = "random"

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        return random_selection(ctx.unlabeled, budget, ctx.rng)
