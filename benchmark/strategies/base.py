"""What every strategy receives and returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from benchmark.detection.pool import DetectionPool
    from benchmark.strategies.pool_model import PoolModel


@dataclass
class SelectionContext:
    """Everything a strategy may ask for in one round; each input is computed once.

    ``unlabeled`` and ``labeled`` hold pool indices; round 0 is the initial selection,
    made by the randomly initialised network. ``probs_fn`` returns the
    softmax outputs of the current model on ``unlabeled`` (rows aligned with
    it), computed in eval mode without augmentation. ``pool`` gives strategies that need
    more (embeddings, the labeled set's features, MC-dropout passes, the network) the same
    cached forward passes, as torch tensors on the training device. ``labels`` are the pool's
    true labels by pool index, for the one strategy that may read them (``balanced``, initial set only).
    ``detections``: on a detection dataset, the class probabilities of every unlabeled image's boxes and how
    their scores become an image's (:meth:`sample_scores`); None for classification.
    """

    unlabeled: np.ndarray
    labeled: np.ndarray
    rng: np.random.Generator
    probs_fn: Callable[[], np.ndarray] | None = None
    round_index: int = 0
    pool: PoolModel | None = None
    labels: np.ndarray | None = None
    detections: DetectionPool | None = None
    _probs: np.ndarray | None = field(default=None, repr=False)

    def torch_generator(self, device: Any) -> Any:
        """A torch.Generator on ``device`` seeded with one draw from the round's ``rng``."""
        import torch

        return torch.Generator(device=device).manual_seed(int(self.rng.integers(2**62)))

    def require_pool(self) -> PoolModel:
        if self.pool is None:
            raise RuntimeError("this strategy needs the network (embeddings / MC dropout); no model given")
        return self.pool

    def sample_scores(self, score_fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """One score per unlabeled sample from ``score_fn`` on class probabilities: per row of ``probs()``, or on
        a detection dataset per image, aggregated over its boxes."""
        if self.detections is not None:
            return self.detections.image_scores(score_fn)
        return score_fn(self.probs())

    def probs(self) -> np.ndarray:
        if self._probs is None:
            if self.probs_fn is None:
                raise RuntimeError("this selection context has no model to compute probabilities")
            self._probs = self.probs_fn()
            if self._probs.shape[0] != len(self.unlabeled):
                raise RuntimeError("probabilities are not aligned with the unlabeled pool")
        return self._probs


class _RegisteredNeeds:
    """``Strategy.needs``: read from the strategy's registry entry, the one place that declares it."""

    def __get__(self, obj: object, owner: type[Strategy]) -> tuple[str, ...]:
        from benchmark.strategies import STRATEGIES

        return STRATEGIES.info(owner.name).needs if owner.name in STRATEGIES else ()


class Strategy:
    """A registered strategy: a thin wrapper over a pure selection function."""

    name: str = ""
    needs = _RegisteredNeeds()  # what it reads in a round, from benchmark.strategies' registry

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        """Return ``min(budget, len(ctx.unlabeled))`` distinct pool indices from ``ctx.unlabeled``."""
        raise NotImplementedError

    def pseudo_labels(self, ctx: SelectionContext, selected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pool indices, labels) to add to the next round's training only; called for strategies whose
        ``needs`` include "pseudo_labels" (CEAL). None by default."""
        return np.empty(0, np.int64), np.empty(0, np.int64)


class Schedule(Strategy):
    """Seed 000's hybrids: one strategy for the initial set (round 0), another afterwards."""

    initial: str = ""
    rounds: str = ""

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        from benchmark.strategies import STRATEGIES

        phase = self.initial if ctx.round_index == 0 else self.rounds
        return STRATEGIES.get(phase)().select(ctx, budget)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores; ties go to the earlier position."""
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    # a stable sort makes ties deterministic: the earlier pool position wins
    order = np.argsort(-scores, kind="stable")
    return order[:k].astype(np.int64)
