"""k-means (k-means++ seeds, then Lloyd's iterations) in torch on any device: the one used by the k-means,
TypiClust and ProbCover strategies and by DeepCluster's pseudo-labels.

Choices (the two former implementations, strategies/diversity.py and pretrain/kmeans.py, differed in the
first two):

- Empty clusters are re-seeded at the points farthest from their own centre (distinct points for distinct
  empty clusters, ties to the lowest position), as scikit-learn's Lloyd does, rather than keeping the old
  centre: a kept centre that attracts no point is a wasted cluster, and it can stay empty for good; a
  re-seeded one takes the worst-served point, which lowers the cost. The result has every cluster
  non-empty (given k distinct points), which DeepCluster's balanced sampler needs.
- Results are a deterministic function of the input and the generator's seed on a given device: cluster
  sums avoid ``index_add_`` on CUDA (float atomics, order dependent) in favour of a one-hot product, argmin
  and sorting take the lowest index on ties, and k-means++ draws by a float64 cumulative sum and
  ``searchsorted`` rather than ``torch.multinomial``.
- Seeds are greedy k-means++ by default (2 + ln k candidates per step, the best kept), as scikit-learn's:
  on blobs plain k-means++ often puts two seeds in one blob, which Lloyd's iterations do not undo (about
  20 % higher cost than scikit-learn's single run on tests/test_ops_kmeans.py's blobs, greedy: within a few
  %). ``local_trials=1`` is plain k-means++, which the strategies keep so that their selections stay as
  they were.
- Distances run over row blocks (``benchmark.ops.distances``): memory is the data plus one block, not N x k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.ops.distances import as_float_matrix, block_sq_dists, rows_per_block, sq_dists_to, sq_norms

LLOYD_ITERATIONS = 20  # also DeepCluster's faiss setting: 20 iterations per clustering


@dataclass(frozen=True)
class KMeansResult:
    centroids: Tensor  # (k, d) float32, in the input's coordinates
    labels: Tensor  # (N,) int64 in [0, k): the nearest centroid of every row (ties: lowest)
    iterations: int  # Lloyd updates run
    reseeded: int  # how many times an empty cluster was re-seeded


def _randint(high: int, generator: torch.Generator) -> int:
    return int(torch.randint(high, (1,), generator=generator, device=generator.device).item())


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand(1, generator=generator, device=generator.device, dtype=torch.float64).item())


def _d2_draw(d2: Tensor, cumulative: Tensor, total: float, generator: torch.Generator) -> int:
    """A position drawn with probability proportional to ``d2`` (its float64 cumulative sum given)."""
    u = torch.tensor([_uniform(generator) * total], dtype=torch.float64, device=d2.device)
    pos = int(torch.searchsorted(cumulative, u, right=True).item())
    if pos >= d2.shape[0] or not bool(d2[pos] > 0):  # rounding at the very end of the cumulative sum
        pos = int(torch.nonzero(d2 > 0)[-1].item())
    return pos


def default_local_trials(k: int) -> int:
    """Candidates per greedy k-means++ step: 2 + floor(ln k), as Arthur & Vassilvitskii and scikit-learn."""
    return 2 + int(math.log(max(k, 1)))


def kmeans_plusplus(x: Tensor, k: int, generator: torch.Generator, local_trials: int | None = None) -> Tensor:
    """Positions of ``k`` distinct initial centres by D^2 sampling (Arthur & Vassilvitskii 2007).

    Greedy k-means++: each step draws ``local_trials`` candidates (default :func:`default_local_trials`) by
    D^2 and keeps the one that lowers the potential most (ties: the first drawn); ``local_trials=1`` is plain
    k-means++. Once every point coincides with a chosen centre, the rest are drawn uniformly among the
    unchosen points.
    """
    x = as_float_matrix(x)
    n = x.shape[0]
    k = min(k, n)
    if k <= 0:
        return torch.empty(0, dtype=torch.long, device=x.device)
    trials = default_local_trials(k) if local_trials is None else local_trials
    if trials < 1:
        raise ValueError(f"k-means++ needs at least one candidate per step, got local_trials={local_trials}")
    x_sq = sq_norms(x)
    chosen = torch.zeros(n, dtype=torch.bool, device=x.device)
    first = _randint(n, generator)
    centres = [first]
    chosen[first] = True
    d2 = sq_dists_to(x, x_sq, x[first])
    d2[chosen] = 0.0
    for _ in range(1, k):
        cumulative = torch.cumsum(d2.double(), dim=0)
        total = float(cumulative[-1].item())
        if total > 0.0:
            candidates = [_d2_draw(d2, cumulative, total, generator) for _ in range(trials)]
            pos = candidates[0]
            if trials > 1:
                idx = torch.tensor(candidates, dtype=torch.long, device=x.device)
                to_candidates = block_sq_dists(x.index_select(0, idx), x_sq[idx], x, x_sq)  # (trials, N)
                potentials = torch.minimum(to_candidates, d2.unsqueeze(0)).double().sum(dim=1)
                pos = candidates[int(torch.argmin(potentials).item())]
        else:
            free = torch.nonzero(~chosen).flatten()
            pos = int(free[_randint(free.numel(), generator)].item())
        centres.append(pos)
        chosen[pos] = True
        torch.minimum(d2, sq_dists_to(x, x_sq, x[pos]), out=d2)
        d2[chosen] = 0.0
    return torch.tensor(centres, dtype=torch.long, device=x.device)


def assign(x: Tensor, x_sq: Tensor, centres: Tensor) -> tuple[Tensor, Tensor]:
    """(index of the nearest centre of every row, ties: lowest; its squared distance), in row blocks."""
    c_sq = sq_norms(centres)
    labels = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    dists = x.new_empty(x.shape[0])
    rows = rows_per_block(centres.shape[0])
    for i in range(0, x.shape[0], rows):
        block = block_sq_dists(x[i:i + rows], x_sq[i:i + rows], centres, c_sq)
        nearest = torch.argmin(block, dim=1)
        labels[i:i + rows] = nearest
        dists[i:i + rows] = block.gather(1, nearest.unsqueeze(1)).squeeze(1)
    return labels, dists


def cluster_sums(x: Tensor, labels: Tensor, k: int) -> Tensor:
    """(k, d) sum of the rows of each cluster, reproducible on CPU and CUDA."""
    if x.device.type == "cpu":
        return x.new_zeros((k, x.shape[1])).index_add_(0, labels, x)
    # index_add_ uses float atomics on CUDA (order-dependent): a one-hot product is reproducible
    sums = x.new_zeros((k, x.shape[1]))
    rows = rows_per_block(k)
    for i in range(0, x.shape[0], rows):
        one_hot = torch.nn.functional.one_hot(labels[i:i + rows], k).to(x.dtype)
        sums.addmm_(one_hot.T, x[i:i + rows])
    return sums


def update_centres(x: Tensor, labels: Tensor, dists: Tensor, k: int) -> tuple[Tensor, int]:
    """(new centres, number of empty clusters): each cluster's mean; an empty cluster is re-seeded at one of
    the points farthest from their current centre (``dists``), distinct ones for distinct empty clusters."""
    counts = torch.bincount(labels, minlength=k)
    centres = cluster_sums(x, labels, k) / counts.clamp(min=1).to(x.dtype).unsqueeze(1)
    empty = torch.nonzero(counts == 0).flatten()
    if empty.numel():
        farthest = torch.sort(dists, descending=True, stable=True).indices[:empty.numel()]
        centres[empty] = x.index_select(0, farthest)
    return centres, int(empty.numel())


def kmeans(x: Tensor, k: int, generator: torch.Generator, iterations: int = LLOYD_ITERATIONS,
           init: Tensor | None = None, local_trials: int | None = None) -> KMeansResult:
    """Lloyd's k-means from greedy k-means++ seeds (``local_trials``, see :func:`kmeans_plusplus`; 1 =
    plain k-means++) or from the given ``init`` centres.

    Stops early when the assignment no longer changes; ``labels`` is the assignment to the returned
    centroids, and every cluster is non-empty (needs k distinct points). Rows are centred on their mean
    first (distances do not change; smaller norms, smaller float32 cancellation). Memory: the data plus one
    block of at most ``BLOCK_ELEMENTS`` distances.
    """
    x = as_float_matrix(x)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k-means: k = {k} clusters for {n} points; k must be between 1 and the number of points")
    shift = x.mean(dim=0)
    x = x - shift
    x_sq = sq_norms(x)
    if init is None:
        centres = x.index_select(0, kmeans_plusplus(x, k, generator, local_trials))
    else:
        centres = init.detach().to(x.device, torch.float32) - shift
        if centres.shape != (k, x.shape[1]):
            raise ValueError(f"k-means: init must have shape ({k}, {x.shape[1]}), got {tuple(init.shape)}")
    labels, dists = assign(x, x_sq, centres)
    reseeded, done = 0, 0
    for done in range(1, iterations + 1):  # noqa: B007 (the count is reported)
        centres, empty = update_centres(x, labels, dists, k)
        reseeded += empty
        new_labels, dists = assign(x, x_sq, centres)
        stable = torch.equal(new_labels, labels)
        labels = new_labels
        if stable:
            break
    # after the last iteration a cluster may still be empty: a re-seeded centre sits on a point, so this
    # rarely needs more than one pass
    for _ in range(k):
        if not bool((torch.bincount(labels, minlength=k) == 0).any()):
            break
        centres, empty = update_centres(x, labels, dists, k)
        reseeded += empty
        labels, dists = assign(x, x_sq, centres)
    return KMeansResult(centres + shift, labels, done, reseeded)
