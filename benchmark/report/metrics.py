"""The maths of the report, as pure functions of arrays.

Curves are (n_labeled, accuracy) pairs, one point per round, sorted by n_labeled.
"""

from __future__ import annotations

import numpy as np


def _sorted(n_labeled: np.ndarray, accuracy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = np.asarray(n_labeled, dtype=np.float64)
    a = np.asarray(accuracy, dtype=np.float64)
    if n.shape != a.shape or n.ndim != 1 or n.size == 0:
        raise ValueError("a curve needs equally long, non-empty 1-d n_labeled and accuracy arrays")
    order = np.argsort(n, kind="stable")
    return n[order], a[order]


def aubc(n_labeled: np.ndarray, accuracy: np.ndarray) -> float:
    """Normalised area under the budget curve: the trapezoidal area divided by the budget range,
    i.e. the mean accuracy over the labeled-set sizes the run covered (a fraction when accuracy is).
    A one-point curve has AUBC equal to its accuracy."""
    n, a = _sorted(n_labeled, accuracy)
    if n[-1] == n[0]:
        return float(a.mean())
    return float(np.trapezoid(a, n) / (n[-1] - n[0]))


def labels_to_reach(n_labeled: np.ndarray, accuracy: np.ndarray, target: float) -> float:
    """Labels at which the curve first reaches ``target``, linearly interpolated between rounds;
    NaN when it never does."""
    n, a = _sorted(n_labeled, accuracy)
    reached = np.flatnonzero(a >= target)
    if reached.size == 0:
        return float("nan")
    i = int(reached[0])
    if i == 0:
        return float(n[0])
    fraction = (target - a[i - 1]) / (a[i] - a[i - 1])
    return float(n[i - 1] + fraction * (n[i] - n[i - 1]))


def label_efficiency(reference: tuple[np.ndarray, np.ndarray], strategy: tuple[np.ndarray, np.ndarray],
                     targets: np.ndarray) -> np.ndarray:
    """Seed 001 A.12: labels the reference (random sampling) needs to reach each target accuracy,
    divided by the labels the strategy needs; > 1 means the strategy saves labels. NaN where
    either curve never reaches the target."""
    return np.array([labels_to_reach(*reference, t) / labels_to_reach(*strategy, t) for t in targets])


def efficiency_targets(curves: list[tuple[np.ndarray, np.ndarray]], points: int = 25) -> np.ndarray:
    """Accuracies every curve spans: from the highest starting point to the lowest maximum."""
    low = max(float(np.min(a)) for _, a in curves)
    high = min(float(np.max(a)) for _, a in curves)
    if high <= low:
        return np.array([high])
    return np.linspace(low, high, points)
