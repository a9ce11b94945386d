"""Seeds of pre-training, derived like every other random choice of a cell (see benchmark.seeding)."""

from __future__ import annotations

import numpy as np

from benchmark.seeding import PURPOSES, derive_seed

# The ids these purposes have (or will have) in benchmark.seeding.PURPOSES. Until they are registered there,
# the same derivation is done here, so results do not change the day they are.
PRETRAIN_PURPOSES = {"pretrain": 5, "pretrain-batches": 6}


def pretrain_seed(seed: int, purpose: str) -> int:
    """``derive_seed(seed, 0, purpose)`` for purpose 'pretrain' (weights) or 'pretrain-batches' (data order,
    augmentation, k-means)."""
    if purpose in PURPOSES:
        return derive_seed(seed, 0, purpose)
    if purpose not in PRETRAIN_PURPOSES:
        raise KeyError(f"unknown pre-training seed purpose '{purpose}'; known: {', '.join(PRETRAIN_PURPOSES)}")
    state = np.random.SeedSequence([seed, 0, PRETRAIN_PURPOSES[purpose]]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1
