"""Class-balanced initial set (seed 004 l.203: "an initial balanced label set L_0 of 10 labels per class").

The selection reads the pool's true labels, i.e. it asks the oracle before labeling, as seed 004 does
to build L_0; that is why it is only an initial strategy (``initial_strategy: balanced``), never one
for the query rounds. Assumptions (the paper gives only budgets that divide evenly): when the budget
is not a multiple of the number of classes, the classes that get one sample more are drawn at random
with the round's generator; within a class samples are drawn uniformly at random.
"""

from __future__ import annotations

import numpy as np

from benchmark.errors import ConfigError
from benchmark.strategies.base import SelectionContext, Strategy


def balanced_counts(num_classes: int, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Per-class counts summing to ``budget`` that differ by at most one; the classes with one more are
    drawn by ``rng``."""
    counts = np.full(num_classes, budget // num_classes, dtype=np.int64)
    counts[rng.choice(num_classes, size=budget % num_classes, replace=False)] += 1
    return counts


def balanced_selection(unlabeled: np.ndarray, labels: np.ndarray, budget: int,
                       rng: np.random.Generator) -> np.ndarray:
    """``budget`` pool indices from ``unlabeled`` with class counts as equal as possible; ``labels`` are
    the true labels of the whole pool (indexed by pool index), whose classes are the ones balanced."""
    classes = np.unique(labels)
    k = min(budget, len(unlabeled))
    counts = balanced_counts(len(classes), k, rng)
    candidates = labels[unlabeled]
    picked = []
    for c, n in zip(classes, counts, strict=True):
        members = unlabeled[candidates == c]
        if len(members) < n:
            raise ConfigError(f"initial_strategy: balanced needs {n} samples of class {c}, but the pool has only "
                              f"{len(members)} unlabeled ones; lower budget.initial or change the dataset view")
        picked.append(rng.choice(members, size=n, replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int64)


class BalancedInitial(Strategy):
    name = "balanced"

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        if ctx.labels is None:
            raise RuntimeError("strategy 'balanced' needs the pool's labels (SelectionContext.labels)")
        return balanced_selection(ctx.unlabeled, ctx.labels, budget, ctx.rng)
