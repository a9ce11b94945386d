"""Joint label propagation (jLP): acquisition by manifold similarity (pure torch).

Seed 004 (Simeoni, Budnik, Avrithis & Gravier, "Rethinking deep active learning: using unlabeled
data at model training", ICPR 2020), Section V: the geometric acquisition function (4) of CoreSet,
with the euclidean distance replaced by *manifold similarity*. The features of the labeled and
unlabeled examples form a reciprocal k-nearest-neighbour graph (Iscen, Tolias, Avrithis & Chum,
"Label propagation for deep semi-supervised learning", CVPR 2019) with affinity matrix W,
normalised as ``W_n = D^-1/2 W D^-1/2`` (Zhou et al. 2004). Label propagation (9) solves
``(I - alpha W_n) h = y``; with ``y = Y 1_c = delta(L)`` (11), the indicator vector of the labeled
set, ``h_i`` is the manifold-ranking similarity of example i to the labeled examples (the queries),
and jLP acquires (12) ``argmin_{i in U} h_i``, greedily: each acquired example joins the queries.

Everything is sparse: the k-NN search runs over row blocks (a matrix product and ``topk`` per
block, never an n x n matrix), the graph is kept as a CSR matrix with at most ``2 n k`` non-zeros,
and the linear system is solved by conjugate gradient (CG) with sparse matrix-vector products,
as in Iscen et al. (the graph and the solver are :mod:`benchmark.ops.graph`, shared with
label-propagation training). The selection function takes float embeddings as torch tensors (CPU or CUDA)
and a ``torch.Generator``, and returns int64 positions into the unlabeled rows in pick order.

Differences from the authors' released code (``JLPSelection`` in lib/selection_methods.py of
osimeoni/RethinkingDeepActiveLearning), which this module follows in its defaults otherwise
(k = 50, affinities cos^3, alpha = 0.99, CG with 20 steps and tolerance 1e-6, the graph over the
labeled and unlabeled examples, greedy re-solves): (a) that code symmetrises the k-NN graph as
``W + W^T`` (every node keeps at least k edges) although the paper calls the graph reciprocal;
here ``reciprocal=True`` (the paper's wording) is the default and ``reciprocal=False`` gives
their graph. In a reciprocal graph a node that is nobody's mutual neighbour (an outlier, or an
anti-hub in high dimension) has no edge, keeps h = 0 and is acquired before everything else.
(b) Negative cosines are clamped at 0 (the paper's ``[.]_+``; their code cubes them). (c) Each
acquisition adds a CG solve for its own query instead of re-solving for all queries from zero
(same cost; see :func:`jlp_select`). (d) Ties go to a seeded random order, not to the index order.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from benchmark.ops.graph import knn_graph, normalize_graph, propagate
from benchmark.strategies.base import SelectionContext, Strategy
from benchmark.strategies.tensors import as_float_embeddings, empty_positions

# --------------------------------------------------------------------------- selection


def jlp_select(unlabeled_emb: Tensor, labeled_emb: Tensor | None, budget: int, generator: torch.Generator,
               k: int = 50, gamma: float = 3.0, alpha: float = 0.99, cg_iterations: int = 20, tol: float = 1e-6,
               reciprocal: bool = True) -> Tensor:
    """Joint label propagation (seed 004, Eq. (12)): greedily, the unlabeled example least
    manifold-similar to the labeled and the already acquired examples.

    The graph (:func:`benchmark.ops.graph.knn_graph`, ``k`` neighbours -- fewer when the pool is small -- and
    affinities ``[cos]_+^gamma``) joins the unlabeled and labeled rows; W_n is its symmetric
    normalisation. The similarity vector is ``h = (I - alpha W_n)^-1 delta(Q)`` for the query set Q,
    starting from the labeled set: one CG solve (:func:`benchmark.ops.graph.propagate`, ``cg_iterations``
    steps, relative tolerance ``tol``). Then ``budget`` times: pick the unpicked unlabeled example
    with the smallest h and add it to the queries. h is linear in the queries, so the re-solve for
    ``Q + {j}`` is warm-started from the previous h and its CG steps are spent on the residual of
    the new query alone: ``h += CG(e_j)`` (each acquisition costs ``cg_iterations`` sparse
    matrix-vector products, and its influence is resolved as accurately as a standalone solve).
    The factor ``1 - alpha`` of (9) does not change the argmin and is left out.

    Ties (all of h is 0 on round 0, with no queries, and stays 0 on parts of the graph that no
    query reaches within ``cg_iterations`` hops) go to a seeded random order of the unlabeled
    rows, so round 0 starts from a random pick. Returns int64 positions into ``unlabeled_emb``,
    in pick order.
    """
    u = as_float_embeddings(unlabeled_emb)
    n, dev = u.shape[0], u.device
    budget = min(int(budget), n)
    if budget <= 0:
        return empty_positions(dev)
    if budget == n:
        return torch.arange(n, device=dev)
    lab = u.new_zeros((0, u.shape[1])) if labeled_emb is None else as_float_embeddings(labeled_emb).to(dev)
    if lab.shape[0] and lab.shape[1] != u.shape[1]:
        raise ValueError(f"labeled embeddings have dimension {lab.shape[1]}, unlabeled {u.shape[1]}")
    x = torch.cat([u, lab]) if lab.shape[0] else u
    w_norm = normalize_graph(knn_graph(x, k, gamma, reciprocal))
    queries = torch.zeros(x.shape[0], device=dev)
    queries[n:] = 1.0
    h = propagate(w_norm, queries, alpha, cg_iterations, tol)
    order = torch.randperm(n, generator=generator, device=generator.device).to(dev)
    picked = torch.zeros(n, dtype=torch.bool, device=dev)
    picks = torch.empty(budget, dtype=torch.long, device=dev)
    for t in range(budget):
        j = order[torch.argmin(torch.where(picked, torch.inf, h[:n]).index_select(0, order))]
        picks[t] = j
        picked[j] = True
        if t + 1 < budget:
            e = torch.zeros_like(queries)
            e[j] = 1.0
            h.add_(propagate(w_norm, e, alpha, cg_iterations, tol))
    return picks


# --------------------------------------------------------------------------- strategy


class JointLabelPropagation(Strategy):
    """jLP: greedily the unlabeled sample least manifold-similar to the labeled ones (seed 004, Eq. (12))."""

    name = "jlp"

    def __init__(self, k: int = 50, gamma: float = 3.0, alpha: float = 0.99, cg_iterations: int = 20,
                 tol: float = 1e-6, reciprocal: bool = True) -> None:
        self.k, self.gamma, self.alpha = k, gamma, alpha
        self.cg_iterations, self.tol, self.reciprocal = cg_iterations, tol, reciprocal

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        count = min(budget, len(ctx.unlabeled))
        if count <= 0:
            return np.empty(0, dtype=np.int64)
        pool = ctx.require_pool()
        unlabeled = pool.unlabeled_outputs()[1]
        if unlabeled.shape[0] != len(ctx.unlabeled):
            raise RuntimeError("embeddings are not aligned with the unlabeled pool")
        labeled = pool.labeled_outputs()[1] if len(ctx.labeled) else None
        generator = ctx.torch_generator(pool.device)
        positions = jlp_select(unlabeled, labeled, count, generator, self.k, self.gamma, self.alpha,
                               self.cg_iterations, self.tol, self.reciprocal)
        positions = positions.cpu().numpy().astype(np.int64)
        if len(positions) != count or len(np.unique(positions)) != count:
            raise RuntimeError(f"jLP returned {len(positions)} positions, expected {count} distinct")
        return np.asarray(ctx.unlabeled)[positions].astype(np.int64)
