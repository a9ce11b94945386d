"""Cluster-Margin: the lowest-margin samples, spread over agglomerative clusters by round robin.

Citovsky, DeSalvo, Gentile, Karydas, Rajagopalan, Rostamizadeh & Kumar (2021), "Batch Active
Learning at Scale", NeurIPS 2021.

The algorithm (their Algorithm 1):

1. cluster the unlabeled pool's embeddings by hierarchical agglomerative clustering (HAC) with
   average linkage;
2. take the ``k_m = min(N, margin_multiple * budget)`` samples with the smallest margin
   ``p_(1) - p_(2)`` between the two most probable classes (the paper uses ``k_m = 10 k``);
3. restrict the clusters to those candidates, sort them by (restricted) size ascending, and visit
   them round robin, taking one random sample per cluster per pass, until the budget is filled.

Simplifications, documented here and in :func:`cluster_margin_select`:

* The paper runs HAC once, on the whole pool, before the first round. Here it is rerun every round
  on the current unlabeled embeddings (the network changes between rounds, so the embeddings do).
* Average-linkage HAC is O(N^2) in memory and time, so at most ``max_hac_points`` (5,000 by
  default) unlabeled samples, drawn uniformly without replacement, are clustered (scipy,
  Euclidean distance); every other candidate joins the cluster whose centroid (mean embedding
  of its clustered members) is nearest. With ``N <= max_hac_points`` this is exact HAC.
* The paper cuts the dendrogram at a distance threshold ``epsilon``; here it is cut into
  ``n_clusters`` clusters (scipy's ``maxclust``), by default as many as the budget.
* Ties in restricted cluster size are broken at random (the paper leaves them open).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from torch import Tensor

from benchmark.strategies.base import SelectionContext, Strategy

_ASSIGN_CHUNK = 4096


def margins(probs: Tensor) -> Tensor:
    """p_(1) - p_(2): the gap between the two most probable classes (small = uncertain)."""
    if probs.shape[1] < 2:
        return torch.ones(probs.shape[0], dtype=probs.dtype, device=probs.device)
    top2 = torch.topk(probs, 2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def _randperm(n: int, generator: torch.Generator) -> np.ndarray:
    return torch.randperm(n, generator=generator, device=generator.device).cpu().numpy()


def hac_labels(embeddings: Tensor, positions: np.ndarray, n_clusters: int, generator: torch.Generator,
               max_hac_points: int = 5000) -> np.ndarray:
    """Average-linkage HAC cluster labels (0-based) of the rows ``positions`` of ``embeddings``.

    The pool (all N rows) is clustered, subsampled to ``max_hac_points`` rows if larger; rows
    outside the subsample get the label of the nearest cluster centroid.
    """
    n = embeddings.shape[0]
    clustered = np.arange(n) if n <= max_hac_points else np.sort(_randperm(n, generator)[:max_hac_points])
    x = embeddings[torch.as_tensor(clustered, device=embeddings.device)].double().cpu().numpy()
    if len(clustered) == 1:
        sub_labels = np.zeros(1, dtype=np.int64)
    else:
        tree = linkage(x, method="average", metric="euclidean")
        sub_labels = fcluster(tree, t=max(1, min(n_clusters, len(clustered))), criterion="maxclust") - 1
        # fcluster numbers the clusters 1..m, but make sure the labels are dense
        sub_labels = np.unique(sub_labels, return_inverse=True)[1].astype(np.int64)
    label_of = np.full(n, -1, dtype=np.int64)
    label_of[clustered] = sub_labels
    labels = label_of[positions]
    missing = np.flatnonzero(labels < 0)
    if missing.size:
        m = int(sub_labels.max()) + 1
        centroids = np.zeros((m, x.shape[1]))
        np.add.at(centroids, sub_labels, x)
        centroids /= np.bincount(sub_labels, minlength=m)[:, None]
        cent = torch.as_tensor(centroids, device=embeddings.device, dtype=embeddings.dtype)
        rows = embeddings[torch.as_tensor(positions[missing], device=embeddings.device)]
        nearest = torch.cat([torch.cdist(chunk, cent).argmin(dim=1) for chunk in rows.split(_ASSIGN_CHUNK)])
        labels[missing] = nearest.cpu().numpy()
    return labels


def round_robin(labels: np.ndarray, budget: int, generator: torch.Generator) -> np.ndarray:
    """Indices into ``labels``: one random member per cluster per pass, smallest clusters first."""
    k = min(budget, len(labels))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    clusters, dense, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    # cluster visiting order: size ascending, ties in random order
    shuffled = _randperm(len(clusters), generator)
    order = shuffled[np.argsort(sizes[shuffled], kind="stable")]
    rank = np.empty(len(clusters), dtype=np.int64)
    rank[order] = np.arange(len(clusters))
    # random order within each cluster: the pass in which each member is taken
    members = _randperm(len(labels), generator)
    member_cluster = dense[members]
    by_cluster = np.argsort(member_cluster, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    passes = np.empty(len(labels), dtype=np.int64)
    passes[by_cluster] = np.arange(len(labels)) - starts[member_cluster[by_cluster]]
    chosen = np.lexsort((rank[member_cluster], passes))[:k]
    return members[chosen].astype(np.int64)


def cluster_margin_select(probs: Tensor, embeddings: Tensor, budget: int, generator: torch.Generator,
                          margin_multiple: int = 10, max_hac_points: int = 5000,
                          n_clusters: int | None = None) -> Tensor:
    """Cluster-Margin (Citovsky et al. 2021): ``min(budget, N)`` distinct row positions (int64).

    ``probs`` (N, C) and ``embeddings`` (N, d), rows aligned. The candidates are the
    ``min(N, margin_multiple * budget)`` lowest-margin rows (ties: earlier row first); the picks
    go round robin over their clusters, smallest first. HAC clusters at most ``max_hac_points``
    random rows and assigns the rest to the nearest centroid; ``n_clusters`` (default: the
    budget) is where the dendrogram is cut. See the module docstring for the simplifications.
    """
    if probs.ndim != 2 or embeddings.ndim != 2 or probs.shape[0] != embeddings.shape[0]:
        raise ValueError(f"probs (N, C) and embeddings (N, d) must have the same N; got "
                         f"{tuple(probs.shape)} and {tuple(embeddings.shape)}")
    if margin_multiple < 1 or max_hac_points < 1:
        raise ValueError("margin_multiple and max_hac_points must be positive")
    n, device = probs.shape[0], probs.device
    k = max(0, min(int(budget), n))
    if k == 0:
        return torch.empty(0, dtype=torch.int64, device=device)
    k_m = min(n, margin_multiple * k)
    candidates = torch.sort(margins(probs), stable=True).indices[:k_m].cpu().numpy()
    if k_m == k:
        return torch.as_tensor(candidates, dtype=torch.int64, device=device)
    labels = hac_labels(embeddings, candidates, n_clusters or k, generator, max_hac_points)
    return torch.as_tensor(candidates[round_robin(labels, k, generator)], dtype=torch.int64, device=device)


class ClusterMargin(Strategy):
    """Cluster-Margin (Citovsky et al. 2021): low-margin samples spread over HAC clusters."""

    name = "cluster_margin"

    def __init__(self, margin_multiple: int = 10, max_hac_points: int = 5000, n_clusters: int | None = None) -> None:
        self.margin_multiple = margin_multiple
        self.max_hac_points = max_hac_points
        self.n_clusters = n_clusters

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        pool = ctx.require_pool()
        probs, embeddings = pool.unlabeled_outputs()
        if probs.shape[0] != len(ctx.unlabeled):
            raise RuntimeError("pool outputs are not aligned with the unlabeled pool")
        positions = cluster_margin_select(probs, embeddings, budget, ctx.torch_generator(pool.device),
                                          self.margin_multiple, self.max_hac_points, self.n_clusters)
        return np.asarray(ctx.unlabeled)[positions.cpu().numpy()].astype(np.int64)
