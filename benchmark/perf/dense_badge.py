"""The straightforward BADGE that peer toolkits use, as a reference for speed, memory and correctness.

It materialises the N x (C*d) gradient embeddings (Ash et al. 2020's ``get_grad_embedding``,
weight gradient only, no bias) and runs the k-means++ seeding with ``torch.cdist`` on them:
O(N C d) memory and time per step instead of O(N (C + d)). It follows the same protocol as
:func:`benchmark.strategies.badge.badge_select` (first centre ``argmax ||g_i||``, then one
uniform draw per centre through :func:`~benchmark.strategies.badge.sample_proportional`), so for
the same generator state it picks the same positions; only the distances are computed differently.
"""

from __future__ import annotations

import torch
from torch import Tensor

from benchmark.strategies.badge import sample_proportional


def dense_gradient_embeddings(probs: Tensor, embeddings: Tensor) -> Tensor:
    """g_i = (p_i - onehot(argmax p_i)) (x) e_i, flattened: an N x (C*d) tensor."""
    dtype = torch.float64 if torch.float64 in (probs.dtype, embeddings.dtype) else torch.float32
    a = probs.to(dtype=dtype, copy=True)
    a[torch.arange(a.shape[0], device=a.device), a.argmax(dim=1)] -= 1.0
    e = embeddings.to(device=a.device, dtype=dtype)
    return (a[:, :, None] * e[:, None, :]).reshape(a.shape[0], -1)


def dense_badge_select(probs: Tensor, embeddings: Tensor, budget: int, generator: torch.Generator) -> Tensor:
    """k-means++ seeding on materialised gradient embeddings; same picks as ``badge_select``."""
    n = probs.shape[0]
    k = max(0, min(int(budget), n))
    positions = torch.empty(k, dtype=torch.int64, device=probs.device)
    if k == 0:
        return positions
    g = dense_gradient_embeddings(probs, embeddings)
    distances = torch.full((n,), float("inf"), dtype=torch.float64, device=g.device)
    picked = torch.zeros(n, dtype=torch.bool, device=g.device)
    for step in range(k):
        c = int(torch.argmax(torch.linalg.vector_norm(g, dim=1)).item()) if step == 0 else \
            sample_proportional(distances, picked, generator)
        positions[step] = c
        picked[c] = True
        # the direct mode reads g once per step; the mat-mul mode recomputes all row norms (about 7x slower here)
        new = torch.cdist(g, g[c:c + 1], compute_mode="donot_use_mm_for_euclid_dist").squeeze(1).double().pow(2)
        torch.minimum(distances, new, out=distances)
        distances[c] = 0.0
    return positions
