"""BADGE: k-means++ seeding on hallucinated gradient embeddings, without ever building them.

Ash, Zhang, Krishnamurthy, Langford & Agarwal (2020), "Deep Batch Active Learning by Diverse,
Uncertain Gradient Lower Bounds", ICLR 2020.

The gradient embedding of sample ``i`` is the gradient of the cross-entropy loss at the
*predicted* label ``y_i = argmax_k p_ik`` with respect to the weights of the last linear layer:

    g_i = (p_i - onehot(y_i)) (x) e_i        (C x d, flattened to C*d)

where ``p_i`` are the softmax probabilities and ``e_i`` the penultimate embedding. As in the
authors' code (``get_grad_embedding``), the gradient of the **bias** (which would be the extra
block ``p_i - onehot(y_i)``) is **not** included; the sign convention (their ``onehot - p``
versus ``p - onehot`` here) does not change any distance.

The batch is the k-means++ seeding of ``{g_i}`` (Arthur & Vassilvitskii 2007): the first centre is
the sample with the largest gradient norm ``argmax_i ||g_i||`` (the authors' ``init_centers`` does
this instead of a uniform first draw), each further centre is drawn with probability proportional
to ``D(i)^2``, the squared distance to the nearest centre chosen so far.

``g`` is never materialised (N x C*d floats: 10 GB for N=50,000, C=100, d=512). Because ``g_i``
is an outer product,

    <g_i, g_j> = <a_i, a_j> <e_i, e_j>,   a_i = p_i - onehot(y_i),
    ||g_i - g_j||^2 = ||a_i||^2 ||e_i||^2 + ||a_j||^2 ||e_j||^2 - 2 <a_i, a_j> <e_i, e_j>,

so adding a centre ``c`` costs two matrix-vector products (``A a_c`` and ``E e_c``): O(N (C + d))
time per step, O(N (C + d)) memory overall. The products run in the inputs' precision (float32
by default, float64 when given float64); norms, the combination above and ``D`` are kept in
float64, which keeps the factorised distances in agreement with a dense computation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from benchmark.strategies.base import SelectionContext, Strategy

_NORM_CHUNK = 4096
# Element-wise work on the N-vectors runs in chunks below ATen's parallel grain size (32,768): on a
# small CPU, OpenMP parallel regions right after each BLAS mat-vec made every step 5-6x slower.
_CPU_CHUNK = 16384


def _uniform(generator: torch.Generator) -> float:
    """One float64 draw in [0, 1) from ``generator`` (on whatever device it lives)."""
    return float(torch.rand(1, generator=generator, device=generator.device, dtype=torch.float64).item())


def sample_proportional(weights: Tensor, picked: Tensor, generator: torch.Generator) -> int:
    """Draw one position with probability ``weights[i] / weights.sum()``.

    ``weights`` are float64, non-negative, and zero at every ``picked`` position. A position whose
    weight is zero is never drawn; when all weights are zero the draw is uniform among the
    positions not yet ``picked``. Exactly one uniform number is taken from ``generator`` per call
    (the protocol :func:`benchmark.perf.dense_badge.dense_badge_select` shares).
    """
    u = _uniform(generator)
    cumulative = torch.cumsum(weights, 0)
    total = float(cumulative[-1].item())
    if total > 0.0:
        target = torch.tensor([u * total], dtype=cumulative.dtype, device=cumulative.device)
        # the first position whose cumulative sum exceeds the target; a zero weight never does
        position = min(int(torch.searchsorted(cumulative, target, right=True).item()), weights.shape[0] - 1)
        if weights[position] > 0:
            return position
        # a parallel scan (GPU) may round a zero weight into a step of the running sum: move on to the
        # next positive weight (on the CPU the scan is sequential and this never happens)
        positive = torch.nonzero(weights > 0).flatten()
        return int(positive[torch.searchsorted(positive, torch.tensor([position], device=positive.device))
                            .clamp(max=positive.numel() - 1)].item())
    free = torch.nonzero(~picked).flatten()
    return int(free[min(int(u * free.numel()), free.numel() - 1)].item())


def _row_sq_norms(x: Tensor) -> Tensor:
    """Squared row norms accumulated in float64, in chunks (no full float64 copy of ``x``)."""
    return torch.cat([chunk.double().pow(2).sum(1) for chunk in x.split(_NORM_CHUNK)]) if x.shape[0] else \
        torch.zeros(0, dtype=torch.float64, device=x.device)


def _residuals(probs: Tensor, dtype: torch.dtype) -> Tensor:
    """a_i = p_i - onehot(argmax p_i): the factor of g_i that lives in class space."""
    a = probs.to(dtype=dtype, copy=True)
    rows = torch.arange(a.shape[0], device=a.device)
    a[rows, a.argmax(dim=1)] -= 1.0
    return a


def badge_seeding(probs: Tensor, embeddings: Tensor, budget: int,
                  generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """k-means++ seeding on the gradient embeddings, with the squared-distance vector at the end.

    Returns ``(positions, D)``: the ``min(budget, N)`` chosen row positions in the order chosen
    (int64) and ``D`` (float64, length N), the squared distance of every sample's gradient
    embedding to its nearest chosen centre (exactly 0 at the chosen positions).
    """
    if probs.ndim != 2 or embeddings.ndim != 2 or probs.shape[0] != embeddings.shape[0]:
        raise ValueError(f"probs (N, C) and embeddings (N, d) must have the same N; got "
                         f"{tuple(probs.shape)} and {tuple(embeddings.shape)}")
    n, device = probs.shape[0], probs.device
    k = max(0, min(int(budget), n))
    positions = torch.empty(k, dtype=torch.int64, device=device)
    distances = torch.full((n,), float("inf"), dtype=torch.float64, device=device)
    if k == 0:
        return positions, distances
    dtype = torch.float64 if torch.float64 in (probs.dtype, embeddings.dtype) else torch.float32
    a = _residuals(probs, dtype)
    e = embeddings.to(device=device, dtype=dtype)
    g_sq = _row_sq_norms(a) * _row_sq_norms(e)  # ||g_i||^2
    picked = torch.zeros(n, dtype=torch.bool, device=device)
    step_rows = n if device.type != "cpu" else _CPU_CHUNK
    chunks = [slice(start, start + step_rows) for start in range(0, n, step_rows)]
    for step in range(k):
        # first centre: the largest gradient norm, as in the authors' init_centers (row 0 if all are 0)
        c = int(torch.argmax(g_sq).item()) if step == 0 else sample_proportional(distances, picked, generator)
        positions[step] = c
        picked[c] = True
        dot_a, dot_e = torch.mv(a, a[c]), torch.mv(e, e[c])  # <g_i, g_c> = <a_i, a_c> <e_i, e_c>
        for rows in chunks:
            # ||g_i - g_c||^2 = ||g_i||^2 + ||g_c||^2 - 2 <g_i, g_c>, in float64
            new = torch.addcmul(g_sq[rows] + g_sq[c], dot_a[rows].double(), dot_e[rows].double(), value=-2.0)
            torch.minimum(distances[rows], new.clamp_(min=0.0), out=distances[rows])
        distances[c] = 0.0
    return positions, distances


def badge_select(probs: Tensor, embeddings: Tensor, budget: int, generator: torch.Generator) -> Tensor:
    """BADGE (Ash et al. 2020): ``min(budget, N)`` distinct row positions (int64, in the order chosen).

    ``probs`` (N, C) softmax outputs and ``embeddings`` (N, d) penultimate features, rows aligned,
    on any one device; ``generator`` supplies the D^2 draws (one uniform number per centre after
    the first). See the module docstring for the gradient embedding and the factorised distances.
    """
    return badge_seeding(probs, embeddings, budget, generator)[0]


class BADGE(Strategy):
    """BADGE (Ash et al. 2020): diverse, uncertain samples by k-means++ seeding on gradient embeddings."""

    name = "badge"

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        pool = ctx.require_pool()
        probs, embeddings = pool.unlabeled_outputs()
        if probs.shape[0] != len(ctx.unlabeled):
            raise RuntimeError("pool outputs are not aligned with the unlabeled pool")
        positions = badge_select(probs, embeddings, budget, ctx.torch_generator(pool.device))
        return np.asarray(ctx.unlabeled)[positions.cpu().numpy()].astype(np.int64)
