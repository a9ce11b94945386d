"""DeepCluster's clustering input (PCA whitening, L2 normalisation) and its balanced sampler of pseudo-classes.

The k-means itself is the shared one, :func:`benchmark.ops.kmeans.kmeans`."""

from __future__ import annotations

import torch
from torch.nn import functional as F

PCA_DIM = 256  # DeepCluster: PCA to 256 dimensions, whitening, L2 normalisation
WHITEN_EPS = 1e-5  # relative to the largest eigenvalue: keeps near-null directions from exploding


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
