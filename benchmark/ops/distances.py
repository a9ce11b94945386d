"""Blocked squared euclidean distances: ``||a||^2 + ||b||^2 - 2 a.b``, clamped at zero, over row blocks of
bounded size, so no N x M matrix is ever materialised."""

from __future__ import annotations

import torch
from torch import Tensor

# about 16 Mi float32 elements (64 MiB) per temporary block of pairwise distances
BLOCK_ELEMENTS = 1 << 24


def as_float_matrix(x: Tensor) -> Tensor:
    """A detached, contiguous float32 copy of a 2-d matrix (clear error otherwise)."""
    if x.ndim != 2:
        raise ValueError(f"expected a 2-d (rows, features) tensor, got shape {tuple(x.shape)}")
    return x.detach().float().contiguous()


def rows_per_block(cols: int, elements: int = BLOCK_ELEMENTS) -> int:
    """Rows of a block of about ``elements`` entries when each row has ``cols`` of them (at least 1)."""
    return max(1, elements // max(1, cols))


def sq_norms(x: Tensor, shift: Tensor | None = None) -> Tensor:
    """Squared norm of each row of ``x - shift``, in small row blocks (no temporary the size of ``x``)."""
    if x.shape[0] == 0:
        return x.new_zeros(0)
    blocks = x.split(rows_per_block(x.shape[1], 1 << 20))
    return torch.cat([((b if shift is None else b - shift) ** 2).sum(dim=1) for b in blocks])


def block_sq_dists(a: Tensor, a_sq: Tensor, b: Tensor, b_sq: Tensor) -> Tensor:
    """Squared euclidean distances between the rows of ``a`` and of ``b`` (one block)."""
    d = torch.addmm(b_sq.unsqueeze(0), a, b.T, alpha=-2.0)
    d.add_(a_sq.unsqueeze(1))
    return d.clamp_(min=0.0)


def sq_dists_to(x: Tensor, x_sq: Tensor, point: Tensor) -> Tensor:
    """Squared distances of every row of ``x`` to the vector ``point`` (one matrix-vector product)."""
    d = torch.mv(x, point)  # a plain mv: on CPU addmv runs at a fraction of its speed
    d.mul_(-2.0).add_(x_sq).add_((point * point).sum())
    return d.clamp_(min=0.0)
