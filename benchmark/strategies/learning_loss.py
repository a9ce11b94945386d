"""Strategies that select with a jointly trained auxiliary module (training.aux)."""

from __future__ import annotations

import numpy as np

from benchmark.strategies.base import SelectionContext, Strategy, top_k
from benchmark.strategies.gradnorm import EntropyGradNorm


class LearningLoss(Strategy):
    """LL4AL (Yoo & Kweon 2019): label the samples with the *highest* predicted loss (on detection, the images
    with the highest predicted detection loss, from the module on the SSD's feature maps)."""

    name = "learning_loss"

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        if ctx.detections is not None:
            losses = ctx.detections.predicted_losses()
        else:
            losses = ctx.require_pool().predicted_losses().cpu().numpy()
        return ctx.unlabeled[top_k(losses, budget)]


class LPLGrad(EntropyGradNorm):
    """LPLgrad (seed 002): train jointly with the loss-prediction module (training.aux is set
    automatically), then select by the entropy gradient norm of the main model, highest first."""

    name = "lplgrad"


class JLS(Strategy):
    """JLS (Caramalau et al. 2021, as described in seed 001): a discriminator sharing the backbone is
    trained jointly on labeled vs unlabeled samples (training.aux: discriminator, set automatically);
    label the samples it most confidently predicts to be unlabeled (lowest P(labeled))."""

    name = "jls"

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        p_labeled = ctx.require_pool().discriminator_labeled_probability().cpu().numpy()
        return ctx.unlabeled[top_k(-p_labeled, budget)]
