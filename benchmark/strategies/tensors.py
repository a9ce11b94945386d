"""Small tensor helpers shared by the embedding-based strategies."""

from __future__ import annotations

import torch
from torch import Tensor


def as_float_embeddings(x: Tensor) -> Tensor:
    """A detached, contiguous float32 copy of a 2-d embedding matrix (clear error otherwise)."""
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-d tensor, got shape {tuple(x.shape)}")
    return x.detach().float().contiguous()


def empty_positions(device: torch.device) -> Tensor:
    return torch.empty(0, dtype=torch.long, device=device)
