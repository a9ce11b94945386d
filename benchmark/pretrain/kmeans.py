"""k-means on the device (torch), the clustering step of DeepCluster, and its feature pre-processing."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

LLOYD_ITERATIONS = 20  # DeepCluster's faiss k-means runs 20 iterations per clustering
PCA_DIM = 256  # DeepCluster: PCA to 256 dimensions, whitening, L2 normalisation
WHITEN_EPS = 1e-5  # relative to the largest eigenvalue: keeps near-null directions from exploding


@dataclass(frozen=True)
class KMeansResult:
    labels: torch.Tensor  # (N,) int64 in [0, k)
    centroids: torch.Tensor  # (k, D)
    iterations: int
    reseeded: int  # how many times an empty cluster was re-seeded


def squared_distances(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """(N, k) squared Euclidean distances, via one matrix product."""
    d = (x * x).sum(1, keepdim=True) - 2 * x @ centroids.T + (centroids * centroids).sum(1)[None, :]
    return d.clamp_min_(0)


def kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Arthur & Vassilvitskii's seeding: each next centroid is a point drawn with probability proportional to
    its squared distance to the nearest centroid chosen so far."""
    n = x.shape[0]
    first = torch.randint(n, (1,), generator=generator, device=x.device)
    centroids = [x[first]]
    nearest = squared_distances(x, centroids[0]).squeeze(1)
    for _ in range(1, k):
        weights = nearest if float(nearest.sum()) > 0 else torch.ones_like(nearest)
        pick = torch.multinomial(weights, 1, generator=generator)
        centroids.append(x[pick])
        nearest = torch.minimum(nearest, squared_distances(x, x[pick]).squeeze(1))
    return torch.cat(centroids)


def _update(x: torch.Tensor, labels: torch.Tensor, distances: torch.Tensor, k: int) -> tuple[torch.Tensor, int]:
    """New centroids (the means of their points); an empty cluster is re-seeded at one of the points farthest
    from their own centroid (distinct points for distinct empty clusters)."""
    counts = torch.bincount(labels, minlength=k)
    sums = torch.zeros(k, x.shape[1], device=x.device, dtype=x.dtype).index_add_(0, labels, x)
    centroids = sums / counts.clamp_min(1)[:, None].to(x.dtype)
    empty = torch.nonzero(counts == 0).squeeze(1)
    if empty.numel():
        own = distances.gather(1, labels[:, None]).squeeze(1)
        farthest = torch.topk(own, empty.numel()).indices
        centroids[empty] = x[farthest]
    return centroids, int(empty.numel())


def kmeans(x: torch.Tensor, k: int, generator: torch.Generator, iterations: int = LLOYD_ITERATIONS,
           init: torch.Tensor | None = None) -> KMeansResult:
    """Lloyd's algorithm from k-means++ seeds (or ``init``); stops early once assignments are stable. Every
    cluster of the result is non-empty (needs k <= number of distinct points)."""
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k-means: k = {k} clusters for {n} points; k must be between 1 and the number of points")
    x = x.float()
    centroids = kmeans_plus_plus(x, k, generator) if init is None else init.to(x.device, torch.float32).clone()
    if centroids.shape != (k, x.shape[1]):
        raise ValueError(f"k-means: init must have shape ({k}, {x.shape[1]}), got {tuple(centroids.shape)}")
    labels = torch.full((n,), -1, dtype=torch.long, device=x.device)
    reseeded, done = 0, 0
    for done in range(1, iterations + 1):  # noqa: B007 (the count is reported)
        distances = squared_distances(x, centroids)
        new_labels = distances.argmin(1)
        centroids, empty = _update(x, new_labels, distances, k)
        reseeded += empty
        stable = empty == 0 and bool(torch.equal(new_labels, labels))
        labels = new_labels
        if stable:
            break
    # the final assignment, against the final centroids; a re-seeded centroid sits on a point, so this
    # rarely needs more than one extra pass
    for _ in range(k):
        distances = squared_distances(x, centroids)
        labels = distances.argmin(1)
        if int((torch.bincount(labels, minlength=k) == 0).sum()) == 0:
            break
        centroids, empty = _update(x, labels, distances, k)
        reseeded += empty
    return KMeansResult(labels, centroids, done, reseeded)


def pca_whiten(x: torch.Tensor, dim: int = PCA_DIM, eps: float = WHITEN_EPS) -> torch.Tensor:
    """Project centred features onto their top ``dim`` principal components, each scaled to unit variance."""
    n, d = x.shape
    dim = min(dim, d, max(n - 1, 1))
    centred = (x - x.mean(0)).double()
    cov = centred.T @ centred / max(n - 1, 1)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0)[:dim], eigenvectors.flip(1)[:, :dim]
    scale = (eigenvalues.clamp_min(0) + eps * eigenvalues[0].clamp_min(1e-12)).rsqrt()
    return (centred @ eigenvectors * scale).float()


def preprocess(features: torch.Tensor, whiten: bool = True) -> torch.Tensor:
    """DeepCluster's clustering input: PCA-whitened (optional) and L2-normalised features."""
    x = pca_whiten(features) if whiten else features.float()
    return F.normalize(x, dim=1)


def balanced_indices(labels: torch.Tensor, k: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` pool indices drawn uniformly over the non-empty pseudo-classes (each appears the same number
    of times, up to one), members drawn uniformly with replacement, then shuffled: DeepCluster's sampler,
    which keeps large clusters from dominating the epoch."""
    counts = torch.bincount(labels, minlength=k)
    nonempty = torch.nonzero(counts).squeeze(1)
    per_cluster = -(-count // nonempty.numel())
    clusters = nonempty.repeat(per_cluster)
    clusters = clusters[torch.randperm(clusters.numel(), generator=generator, device=labels.device)[:count]]
    members = torch.argsort(labels, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    offset = (torch.rand(count, generator=generator, device=labels.device) * counts[clusters]).long()
    offset = torch.minimum(offset, counts[clusters] - 1)
    return members[starts[clusters] + offset]
