"""A query strategy: one pure scoring function and the class alb calls once per round."""

import numpy as np

from benchmark.registry import StrategyInfo
from benchmark.strategies.base import SelectionContext, Strategy, top_k


def top2_ratio_scores(probs: np.ndarray) -> np.ndarray:
    """p2 / p1 of each row: 1 when the two most probable classes tie, near 0 when one dominates."""
    top2 = np.sort(probs, axis=1)[:, -2:]
    return top2[:, 0] / np.maximum(top2[:, 1], 1e-12)


class Top2Ratio(Strategy):
    """Ratio of the two largest class probabilities, highest first."""

    # the facts alb needs when a suite names this class directly (alb_example_plugin.strategy:Top2Ratio)
    alb_info = StrategyInfo("plain", needs=("probs",), version=1)

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        # ctx.unlabeled: pool indices; ctx.probs(): softmax outputs on them (rows aligned), computed once
        return ctx.unlabeled[top_k(top2_ratio_scores(ctx.probs()), budget)]
