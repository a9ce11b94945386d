"""The straightforward k-center greedy that peers ship, kept as a reference for speed and memory.

It materialises the full (N + M) x (N + M) distance matrix with ``torch.cdist`` and then runs
the greedy loop over its columns, as e.g. DeepAL's ``KCenterGreedy`` does (there with numpy).
It makes the same picks as :func:`benchmark.strategies.diversity.coreset_select` (up to float
rounding on near-ties), but needs 4 (N + M)^2 bytes: about 10 GB at N = 50,000, M = 1,000.
"""

from __future__ import annotations

import torch
from torch import Tensor


def dense_kcenter_greedy(unlabeled_emb: Tensor, labeled_emb: Tensor | None, budget: int,
                         generator: torch.Generator) -> Tensor:
    """k-center greedy (Sener & Savarese 2018) on a dense distance matrix.

    Returns int64 positions into ``unlabeled_emb`` in pick order; with no labeled point the first
    centre is drawn with ``generator`` exactly as ``coreset_select`` draws it. Ties: lowest position.
    """
    u = unlabeled_emb.detach().float()
    n = u.shape[0]
    k = min(int(budget), n)
    if k <= 0:
        return torch.empty(0, dtype=torch.long, device=u.device)
    if k == n:
        return torch.arange(n, device=u.device)
    lab = u.new_zeros((0, u.shape[1])) if labeled_emb is None else labeled_emb.detach().float().to(u.device)
    everything = torch.cat([u, lab])
    dist = torch.cdist(everything, everything)  # (N + M) x (N + M), all at once
    nearest = dist[:n, n:].min(dim=1).values if lab.shape[0] else torch.full((n,), float("inf"), device=u.device)
    picks = []
    for t in range(k):
        if t == 0 and lab.shape[0] == 0:
            centre = int(torch.randint(n, (1,), generator=generator, device=generator.device).item())
        else:
            centre = int(torch.argmax(nearest).item())
        picks.append(centre)
        nearest = torch.minimum(nearest, dist[:n, centre])
        nearest[centre] = -1.0
    return torch.tensor(picks, dtype=torch.long, device=u.device)
