"""WAAL (Shui et al. 2020): uncertainty of the task model + diversity from the jointly trained Wasserstein critic.

The network and the critic are trained together in a min-max game on labeled and unlabeled data
(training.aux: wasserstein, set automatically; :mod:`benchmark.training.wasserstein`). The critic
``D`` learns to score unlabeled embeddings high and labeled ones low, so a high ``D(z)`` marks a sample
far from the labeled distribution (diversity). The uncertainty term is the paper's upper bound on the
unknown-label loss, which the official code (``query_strategies/wasserstein_adversarial.py``) computes
as ``0.5 * ||log p||_2 + 0.5 * ||log p||_1`` of the predicted probabilities: it is smallest for a uniform
prediction, so a *small* bound means an uncertain sample. The official query labels the ``budget``
samples with the smallest ``bound - selection * D(z)`` (``selection = 10`` for CIFAR-10, SVHN and
Fashion-MNIST); alb scores the negation, ``selection * D(z) - bound``, and takes the highest.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmark.strategies.base import SelectionContext, Strategy, top_k

SELECTION = 10.0  # official wasserstein_adversarial.py: self.selection = 10


def loss_upper_bound(probs: torch.Tensor) -> torch.Tensor:
    """0.5 * ||log p||_2 + 0.5 * ||log p||_1 per row of (n, classes) probabilities: the official WAAL mix of
    its L2 and L1 upper bounds. Probabilities that underflowed to 0 count as the smallest positive float
    (the official code's log(0) = -inf would rank the sample last; here it ranks nearly last)."""
    log_p = torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))
    return 0.5 * log_p.norm(2, dim=1) + 0.5 * log_p.abs().sum(dim=1)


def waal_scores(probs: torch.Tensor, critic: torch.Tensor, selection: float = SELECTION) -> torch.Tensor:
    """``selection * D(z) - bound(p)`` per unlabeled sample; label the highest (the official code's
    smallest ``bound - selection * D(z)``)."""
    if probs.shape[0] != critic.shape[0]:
        raise ValueError(f"{probs.shape[0]} rows of probabilities but {critic.shape[0]} critic scores")
    return selection * critic - loss_upper_bound(probs)


class WAAL(Strategy):
    """WAAL (Shui et al. 2020): most uncertain and least labeled-like samples, by the jointly trained critic."""

    name = "waal"

    def __init__(self, selection: float = SELECTION) -> None:
        if selection < 0:
            raise ValueError(f"waal: selection (the weight of the critic's diversity term) must be >= 0, "
                             f"got {selection}")
        self.selection = selection

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        pool = ctx.require_pool()
        critic = pool.critic_scores()
        probs, _ = pool.unlabeled_outputs()
        return ctx.unlabeled[top_k(waal_scores(probs, critic, self.selection).cpu().numpy(), budget)]
