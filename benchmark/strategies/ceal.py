"""CEAL (Wang et al. 2017, "Cost-Effective Active Learning for Deep Image Classification"), as
seed 004 uses it (Eq. 7): label the most uncertain samples (highest entropy) and, once per cycle,
train on the most certain unlabeled samples too, with their predicted classes as pseudo-labels:
L_hat = {i in U : H(p_i) <= epsilon}. The pseudo-labels join the next round's training set only;
they are never added to the labeled set. epsilon shrinks each round (epsilon_r = max(0,
threshold - decay x r)) so that pseudo-labels become rarer as the model sees more true labels.
"""

from __future__ import annotations

import numpy as np

from benchmark.strategies.base import SelectionContext
from benchmark.strategies.uncertainty import EntropySampling, entropy_scores

DEFAULT_THRESHOLD = 0.05  # nats; alb's default (the paper tunes it per dataset)
DEFAULT_DECAY = 0.0033  # per round


def confident_pseudo_labels(probs: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(positions, predicted classes) of the rows whose entropy is at most ``threshold``."""
    positions = np.flatnonzero(entropy_scores(probs) <= threshold)
    return positions.astype(np.int64), probs[positions].argmax(axis=1).astype(np.int64)


class CEAL(EntropySampling):
    name = "ceal"

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, decay: float = DEFAULT_DECAY) -> None:
        self.threshold, self.decay = threshold, decay

    def pseudo_labels(self, ctx: SelectionContext, selected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pool indices and pseudo-labels for the next round's training, excluding ``selected``."""
        epsilon = max(0.0, self.threshold - self.decay * ctx.round_index)
        positions, labels = confident_pseudo_labels(ctx.probs(), epsilon)
        keep = ~np.isin(ctx.unlabeled[positions], selected)
        return ctx.unlabeled[positions][keep], labels[keep]
