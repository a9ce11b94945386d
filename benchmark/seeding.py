"""Every random choice of a cell draws from a generator derived from (seed, round, purpose).

Deriving instead of carrying one evolving generator means a resumed cell needs
no saved RNG state to make exactly the choices an uninterrupted run makes.
"""

from __future__ import annotations

import numpy as np

PURPOSES = {"init": 0, "train": 1, "select": 2, "subset": 3, "mc_dropout": 4, "view": 5, "pretrain": 6,
            "pretrain-batches": 7, "candidate": 8, "candidate-init": 9, "candidate-train": 10}


def derive_seed(seed: int, round_index: int, purpose: str) -> int:
    """A 63-bit seed, independent across (seed, round, purpose)."""
    state = np.random.SeedSequence([seed, round_index, PURPOSES[purpose]]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def numpy_rng(seed: int, round_index: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, round_index, purpose))
