"""The unlabeled pool as detection strategies see it: each image's box probabilities, computed once a round."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from benchmark.detection.scoring import image_scores


@dataclass
class DetectionPool:
    """``compute`` gives the box probabilities of the unlabeled images (aligned with them), called at most once;
    ``losses``, with training.aux: loss_prediction, their predicted losses (LL4AL)."""

    compute: Callable[[], list[np.ndarray]]
    aggregation: str
    empty_image: str
    num_outputs: int  # background + object classes
    losses: Callable[[], np.ndarray] | None = None
    _boxes: list[np.ndarray] | None = field(default=None, repr=False)

    def box_probs(self) -> list[np.ndarray]:
        if self._boxes is None:
            self._boxes = self.compute()
        return self._boxes

    def image_scores(self, score_fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        return image_scores(self.box_probs(), score_fn, self.aggregation, self.empty_image, self.num_outputs)

    def predicted_losses(self) -> np.ndarray:
        if self.losses is None:
            raise RuntimeError("the predicted losses need the jointly trained loss_prediction module: "
                               "training.aux: loss_prediction")
        return self.losses()
