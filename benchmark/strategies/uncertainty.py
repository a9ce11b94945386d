"""Uncertainty and confidence sampling on class probabilities (pure numpy)."""

from __future__ import annotations

import numpy as np

from benchmark.strategies.base import SelectionContext, Strategy, top_k


def entropy_scores(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy of each row; 0 log 0 is taken as 0."""
    p = probs.astype(np.float64, copy=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=1)


def least_confidence_scores(probs: np.ndarray) -> np.ndarray:
    """phi_LC = 1 - max_k p_k (seed 000): high for uncertain samples."""
    return 1.0 - probs.max(axis=1)


def high_confidence_scores(probs: np.ndarray) -> np.ndarray:
    """phi_HC = max_k p_k (seed 000): high for confident samples."""
    return probs.max(axis=1)


def margin_scores(probs: np.ndarray) -> np.ndarray:
    """Negative gap between the two largest probabilities: high when the gap is small."""
    top2 = np.partition(probs, -2, axis=1)[:, -2:]
    return -(top2[:, 1] - top2[:, 0])


def hybrid_lc_hc_select(unlabeled: np.ndarray, probs: np.ndarray, budget: int,
                        lc_fraction: float = 0.5) -> np.ndarray:
    """HLH (seed 000 l.106, alb's reading): floor(lc_fraction x budget) samples by phi_LC, the rest of the
    batch by phi_HC among the samples LC did not take. Returns LC's picks first, then HC's."""
    budget = min(budget, len(unlabeled))
    n_lc = int(np.floor(lc_fraction * budget))
    lc_pos = top_k(least_confidence_scores(probs), n_lc)
    hc_scores = high_confidence_scores(probs).astype(np.float64)
    hc_scores[lc_pos] = -np.inf  # one sample is never taken twice (only matters when the batch nears the pool)
    hc_pos = top_k(hc_scores, budget - n_lc)
    return unlabeled[np.concatenate([lc_pos, hc_pos])]


def select_by_scores(unlabeled: np.ndarray, scores: np.ndarray, budget: int) -> np.ndarray:
    """Pool indices of the ``budget`` highest-scoring unlabeled samples."""
    return unlabeled[top_k(scores, budget)]


class _ScoreStrategy(Strategy):

    @staticmethod
    def scores(probs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        return select_by_scores(ctx.unlabeled, ctx.sample_scores(self.scores), budget)


class EntropySampling(_ScoreStrategy):
    name = "entropy"
    scores = staticmethod(entropy_scores)


class LeastConfidence(_ScoreStrategy):
    name = "least_confidence"
    scores = staticmethod(least_confidence_scores)


class HighConfidence(_ScoreStrategy):
    name = "high_confidence"
    scores = staticmethod(high_confidence_scores)


class MarginSampling(_ScoreStrategy):
    name = "margin"
    scores = staticmethod(margin_scores)


class HybridLCHC(Strategy):
    """HLH: every selection (the initial one too) is part LC, part HC; ``lc_fraction`` of the batch by LC."""

    name = "hlh"

    def __init__(self, lc_fraction: float = 0.5) -> None:
        self.lc_fraction = lc_fraction

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        return hybrid_lc_hc_select(ctx.unlabeled, ctx.probs(), budget, self.lc_fraction)
