"""kNN graphs, their symmetric normalisation and conjugate gradient: label propagation's numerics, shared
by jLP acquisition (``benchmark.strategies.jlp``) and label-propagation training (``benchmark.training.semi``).

After Iscen, Tolias, Avrithis & Chum, "Label propagation for deep semi-supervised learning" (CVPR 2019) and
seed 004 (Simeoni et al., ICPR 2020): affinities ``[cos]_+^gamma`` between each row and its k nearest
neighbours, ``W_n = D^-1/2 W D^-1/2`` (Zhou et al. 2004), and ``(I - alpha W_n) X = B`` solved by conjugate
gradient. Everything stays sparse: the neighbour search runs over row blocks (a matrix product and ``topk``
per block, never n x n), and the graph has at most ``2 n k`` non-zeros.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from benchmark.ops.distances import as_float_matrix

# about 16 Mi float32 elements (64 MiB) per temporary block of similarities
BLOCK_ELEMENTS = 1 << 24


def knn_graph(x: Tensor, k: int = 50, gamma: float = 3.0, reciprocal: bool = True,
              block_elements: int = BLOCK_ELEMENTS) -> Tensor:
    """Sparse symmetric affinity matrix W (CSR, zero diagonal) of the k-NN graph of the rows of ``x``.

    Rows are L2-normalised; the affinity of an edge is ``s(u, v) = [u^T v]_+^gamma``. Each row's
    ``min(k, n - 1)`` nearest neighbours (itself excluded, even among duplicates; ties: the lower index) are
    found over row blocks of about ``block_elements`` similarities. With ``reciprocal`` an edge (i, j) is kept
    only when j is among the neighbours of i *and* i among those of j; otherwise the union is kept as
    ``A + A^T`` (pairs found from both sides then weigh twice). Each weight is computed once and mirrored, so
    W is exactly symmetric; edges of zero weight (cosine <= 0) are dropped.
    """
    if k <= 0 or gamma <= 0:
        raise ValueError(f"k and gamma must be positive, got k={k}, gamma={gamma}")
    x = torch.nn.functional.normalize(as_float_matrix(x), dim=1)
    n, dev = x.shape[0], x.device
    k = min(int(k), n - 1)
    empty = torch.empty(0, dtype=torch.long, device=dev)
    if k <= 0:
        return _csr(empty, empty, x.new_zeros(0), n)
    step = max(1, block_elements // max(1, n))
    neighbours = torch.empty((n, k), dtype=torch.long, device=dev)
    cosines = x.new_empty((n, k))
    for i in range(0, n, step):
        block = x[i:i + step] @ x.T
        r = torch.arange(block.shape[0], device=dev)
        block[r, r + i] = -torch.inf  # no self-loops, even among duplicates
        cosines[i:i + step], neighbours[i:i + step] = torch.topk(block, k, dim=1)
        del block
    src = torch.arange(n, device=dev).repeat_interleave(k)
    dst, cos = neighbours.flatten(), cosines.flatten()
    del neighbours, cosines
    if reciprocal:
        # (i, j) is reciprocal when the reversed key j * n + i is also an edge
        keep = torch.isin(dst * n + src, src * n + dst) & (src < dst)
        w = cos[keep].clamp(min=0.0) ** gamma
        src, dst = src[keep], dst[keep]
    else:
        w = cos.clamp(min=0.0) ** gamma
    keep = w > 0
    src, dst, w = src[keep], dst[keep], w[keep]
    return _csr(torch.cat([src, dst]), torch.cat([dst, src]), torch.cat([w, w]), n)


def _csr(rows: Tensor, cols: Tensor, values: Tensor, n: int) -> Tensor:
    """An n x n CSR matrix from COO triplets; duplicate (row, col) pairs are summed."""
    dev = values.device
    if rows.numel():
        keys, inverse = torch.unique(rows * n + cols, return_inverse=True)
        values = torch.zeros(keys.numel(), dtype=values.dtype, device=dev).index_add_(0, inverse, values)
        rows, cols = keys // n, keys % n
    crow = torch.zeros(n + 1, dtype=torch.long, device=dev)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n), dim=0)
    return _sparse_csr(crow, cols, values, n)


def _sparse_csr(crow: Tensor, cols: Tensor, values: Tensor, n: int) -> Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return torch.sparse_csr_tensor(crow, cols, values, (n, n), check_invariants=False)


def normalize_graph(w: Tensor) -> Tensor:
    """``D^-1/2 W D^-1/2`` with ``D = diag(W 1)``, in W's sparse layout (CSR or COO); an isolated node
    (degree 0) keeps an empty row and column."""
    n = w.shape[0]
    if w.layout == torch.sparse_csr:
        crow, cols, values = w.crow_indices(), w.col_indices(), w.values()
        rows = torch.repeat_interleave(torch.arange(n, device=values.device), crow[1:] - crow[:-1])
    elif w.layout == torch.sparse_coo:
        w = w.coalesce()
        (rows, cols), values = w.indices(), w.values()
    else:
        raise ValueError(f"normalize_graph needs a sparse CSR or COO matrix, got layout {w.layout}")
    degree = torch.zeros(n, dtype=values.dtype, device=values.device).index_add_(0, rows, values)
    scale = torch.where(degree > 0, degree.clamp(min=torch.finfo(values.dtype).tiny).rsqrt(), 0.0)
    scaled = values * scale[rows] * scale[cols]
    if w.layout == torch.sparse_csr:
        return _sparse_csr(crow, cols, scaled, n)
    return torch.sparse_coo_tensor(w.indices(), scaled, w.shape, is_coalesced=True, check_invariants=False)


def conjugate_gradient(matmul: Callable[[Tensor], Tensor], b: Tensor, iterations: int, tol: float,
                       x0: Tensor | None = None) -> Tensor:
    """Approximate solution of ``A X = B`` by at most ``iterations`` CG steps, A symmetric positive definite
    given by ``matmul(V) = A V``; ``b`` is one right-hand side (n,) or several (n, c).

    Every column runs its own CG recursion (its own step sizes), vectorised across columns; a column stops
    changing once its residual norm is at most ``tol`` times the norm of its right-hand side (scipy's relative
    criterion), or at once when its right-hand side is 0. ``x0`` is a warm start (default 0).
    """
    vector = b.ndim == 1
    b2 = b.unsqueeze(1) if vector else b

    def apply(v: Tensor) -> Tensor:
        return matmul(v.squeeze(1)).unsqueeze(1) if vector else matmul(v)

    if x0 is None:
        x, r = torch.zeros_like(b2), b2.clone()
    else:
        x = (x0.unsqueeze(1) if vector else x0).clone()
        r = b2 - apply(x)
    p = r.clone()
    rs = (r * r).sum(dim=0)
    target = tol**2 * (b2 * b2).sum(dim=0)
    for _ in range(iterations):
        active = rs > target
        if not bool(active.any()):
            break
        ap = apply(p)
        curvature = (p * ap).sum(dim=0)
        step = torch.where(active, rs / torch.where(active, curvature, 1.0), 0.0)
        x += step * p
        r -= step * ap
        rs_new = (r * r).sum(dim=0)
        p = r + torch.where(active, rs_new / torch.where(active, rs, 1.0), 0.0) * p
        rs = torch.where(active, rs_new, rs)
    return x.squeeze(1) if vector else x


def propagate(w_norm: Tensor, b: Tensor, alpha: float, iterations: int = 20, tol: float = 1e-6,
              x0: Tensor | None = None) -> Tensor:
    """Label propagation: CG for ``(I - alpha W_n) X = B`` (symmetric positive definite for 0 <= alpha < 1,
    the spectrum of W_n lying in [-1, 1]). The defaults are Iscen et al.'s (scipy's CG, tol 1e-6, 20
    iterations): with alpha = 0.99 that is a truncated Krylov approximation, not the exact solve, and exactly
    0 at nodes more than ``iterations`` hops from every non-zero of B."""
    if not 0 <= alpha < 1:
        raise ValueError(f"alpha must be in [0, 1), got {alpha}")

    def matmul(v: Tensor) -> Tensor:
        return v - alpha * (w_norm @ v)

    return conjugate_gradient(matmul, b, iterations, tol, x0)
