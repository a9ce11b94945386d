"""From the class probabilities of an image's boxes to one score per image (pure numpy).

Each detected box carries the detector's softmax over background (column 0) and the C object classes.
A strategy's per-sample function (least confidence, entropy, ...; benchmark.strategies.uncertainty) scores
every box, and ``aggregation`` turns an image's box scores into the image's score:

* ``mean`` (alb's default): the mean over the image's boxes. It keeps seed 000's identity
  phi_LC = 1 - phi_HC (seed 000 l.196-198) for images, so that LC ranks images exactly in the reverse
  order of HC as it does for classification, and it does not favour images because they hold many boxes.
* ``max``: the box the strategy likes most decides (the image's most uncertain box for LC).
* ``sum``: the total over the boxes (images with many uncertain boxes first).

An image without any box above the detector's score threshold is scored as one box (``empty_image``):
``background`` (default), a box that is certainly background, which is what the detector's output says
(every anchor kept the background above 1 - threshold); or ``uncertain``, a box with uniform probabilities
(the most uncertain box possible).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

AGGREGATIONS = ("mean", "max", "sum")
EMPTY_IMAGE_RULES = ("background", "uncertain")

ScoreFn = Callable[[np.ndarray], np.ndarray]


def empty_box(num_outputs: int, rule: str) -> np.ndarray:
    """The (1, num_outputs) probabilities an image without boxes is scored with."""
    if rule == "background":
        box = np.zeros((1, num_outputs))
        box[0, 0] = 1.0
        return box
    if rule == "uncertain":
        return np.full((1, num_outputs), 1.0 / num_outputs)
    raise ValueError(f"empty_image must be one of {EMPTY_IMAGE_RULES}, got {rule!r}")


def aggregate(box_scores: np.ndarray, rule: str) -> float:
    """One image's score from the scores of its boxes (at least one)."""
    if rule == "mean":
        return float(box_scores.mean())
    if rule == "max":
        return float(box_scores.max())
    if rule == "sum":
        return float(box_scores.sum())
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {rule!r}")


def image_scores(box_probs: list[np.ndarray], score_fn: ScoreFn, aggregation: str, empty_image: str,
                 num_outputs: int) -> np.ndarray:
    """One score per image: ``score_fn`` on each box's probabilities (K x num_outputs), aggregated."""
    scores = np.empty(len(box_probs))
    for i, probs in enumerate(box_probs):
        boxes = probs if len(probs) else empty_box(num_outputs, empty_image)
        scores[i] = aggregate(np.asarray(score_fn(boxes), dtype=np.float64), aggregation)
    return scores
