"""Diversity and representativeness sampling on penultimate embeddings (pure torch).

Every selection function takes float embeddings as torch tensors (CPU or CUDA) and a
``torch.Generator`` for its random choices, and returns int64 *positions* into the
unlabeled rows, in the order they were picked. The thin strategy classes map those
positions to pool indices. Large distance matrices are never materialised: every
pairwise computation runs over row (and column) blocks of bounded size, with squared
euclidean distances ``||a||^2 + ||b||^2 - 2 a.b`` clamped at zero (:mod:`benchmark.ops.distances`;
k-means is :mod:`benchmark.ops.kmeans`, shared with DeepCluster).

Ties always go to the lowest position (``argmax`` / ``argmin`` return the first
extremum), so a selection is a deterministic function of the embeddings and the
generator's seed on a given device.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import Tensor

from benchmark.ops.distances import block_sq_dists, rows_per_block, sq_dists_to, sq_norms
from benchmark.ops.kmeans import kmeans
from benchmark.strategies.base import SelectionContext, Strategy
from benchmark.strategies.tensors import as_float_embeddings, empty_positions

# plain k-means++ seeds (one candidate per step), as these strategies have always drawn them: greedy seeds
# (benchmark.ops.kmeans's default, lower cost) would change their selections
KMEANS_LOCAL_TRIALS = 1
# ProbCover's delta when the purity heuristic cannot give one (Yehuda et al. 2022, CIFAR-10)
PROBCOVER_FALLBACK_DELTA = 0.75


# --------------------------------------------------------------------------- helpers


def _trivial_selection(n: int, budget: int, device: torch.device) -> tuple[int, torch.Tensor | None]:
    """(k, answer): the answer without any work when the budget is 0 or covers the whole pool."""
    k = min(int(budget), n)
    if k <= 0:
        return k, empty_positions(device)
    if k == n:
        return k, torch.arange(n, device=device)
    return k, None


def _labeled_like(labeled_emb: Tensor | None, unlabeled: Tensor) -> Tensor:
    if labeled_emb is None or labeled_emb.numel() == 0:
        return unlabeled.new_zeros((0, unlabeled.shape[1]))
    lab = as_float_embeddings(labeled_emb).to(unlabeled.device)
    if lab.shape[1] != unlabeled.shape[1]:
        raise ValueError(f"labeled embeddings have dimension {lab.shape[1]}, unlabeled {unlabeled.shape[1]}")
    return lab


def _randint(high: int, generator: torch.Generator) -> int:
    return int(torch.randint(high, (1,), generator=generator, device=generator.device).item())


def _randperm(n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    return torch.randperm(n, generator=generator, device=generator.device).to(device)


# --------------------------------------------------------------------------- CoreSet


def min_sq_dists(x: Tensor, others: Tensor, chunk_size: int = 4096) -> Tensor:
    """For each row of ``x``, the squared distance to its nearest row of ``others`` (+inf if none).

    Computed over ``chunk_size x chunk_size`` blocks: memory O(chunk_size^2), never len(x) x len(others).
    Both sides are centred on the mean of ``x`` block by block (distances do not change under a
    translation, and smaller norms mean a smaller float32 cancellation error).
    """
    x, others = as_float_embeddings(x), as_float_embeddings(others).to(x.device)
    out = torch.full((x.shape[0],), math.inf, device=x.device)
    if others.shape[0] == 0 or x.shape[0] == 0:
        return out
    shift = x.mean(dim=0)
    x_sq, o_sq = sq_norms(x, shift), sq_norms(others, shift)
    for j in range(0, others.shape[0], chunk_size):
        cols = slice(j, j + chunk_size)
        o = others[cols] - shift
        for i in range(0, x.shape[0], chunk_size):
            rows = slice(i, i + chunk_size)
            block = block_sq_dists(x[rows] - shift, x_sq[rows], o, o_sq[cols])
            torch.minimum(out[rows], block.amin(dim=1), out=out[rows])
    return out


def _refresh(x: Tensor, shift: Tensor, x_sq: Tensor, bound: Tensor, stamp: Tensor, centres: Tensor,
             c_sq: Tensor, t: int, rows: Tensor | None) -> None:
    """Bring ``bound`` of the given rows (all rows if None) up to date with centres[:t], in place.

    ``bound[i]`` is the exact squared distance of row i to the labeled points and centres[:stamp[i]];
    only the centres added since ``stamp[i]`` are computed. ``centres`` and ``x_sq`` are centred on
    ``shift``; the rows of ``x`` are centred as they are gathered.
    """
    if rows is None:
        step = min(rows_per_block(max(1, t - int(stamp.min().item()))), rows_per_block(x.shape[1]))
        for i in range(0, x.shape[0], step):
            _refresh(x, shift, x_sq, bound, stamp, centres, c_sq, t,
                     torch.arange(i, min(i + step, x.shape[0]), device=x.device))
        return
    stamps = stamp[rows]
    low, high = int(stamps.min().item()), int(stamps.max().item())
    if low >= t:
        return
    if low < high:  # typically: the candidates refreshed at the last pick, and a few new ones
        latest = stamps == high
        for part in (rows[latest], rows[~latest]):
            _refresh(x, shift, x_sq, bound, stamp, centres, c_sq, t, part)
        return
    # index_select, not x[rows]: advanced indexing runs a parallel kernel that stalls on a busy CPU
    block = block_sq_dists(x.index_select(0, rows) - shift, x_sq[rows], centres[low:t], c_sq[low:t])
    bound[rows] = torch.minimum(bound[rows], block.amin(dim=1))
    stamp[rows] = t


def _farthest(x: Tensor, shift: Tensor, x_sq: Tensor, bound: Tensor, stamp: Tensor, centres: Tensor,
              c_sq: Tensor, t: int) -> int:
    """The position with the largest up-to-date bound (ties: lowest), refreshing as few rows as possible.

    Stale bounds only overestimate, so once the best refreshed candidate beats the largest stale bound
    of every row outside the candidates, it is the exact argmax (lazy evaluation, Minoux 1978).
    """
    n = x.shape[0]
    size = 64
    while size + 1 < n // 8:
        values, cand = torch.topk(bound, size + 1)
        rest, cand = values[-1], cand[:-1]
        _refresh(x, shift, x_sq, bound, stamp, centres, c_sq, t, cand)
        fresh = bound[cand]
        best = fresh.max()
        if bool(best > rest):
            return int(cand[fresh == best].min().item())
        size *= 8
    _refresh(x, shift, x_sq, bound, stamp, centres, c_sq, t, None)  # catch up every row: one blocked product
    return int(torch.argmax(bound).item())


def coreset_select(unlabeled_emb: Tensor, labeled_emb: Tensor | None, budget: int,
                   generator: torch.Generator, chunk_size: int = 4096) -> Tensor:
    """k-center greedy (Sener & Savarese, "Active Learning for Convolutional Neural Networks:
    A Core-Set Approach", ICLR 2018).

    Keeps each unlabeled point's squared distance to its nearest centre (the labeled points plus
    the centres picked so far) and picks the farthest point, ``budget`` times. Distances to the
    labeled set are computed in ``chunk_size`` x ``chunk_size`` blocks, so the memory beyond the
    embeddings themselves is O(N + chunk_size^2 + budget d): no N x N or N x M matrix. With no
    labeled point (round 0) the first centre is drawn uniformly with ``generator``. Ties go to
    the lowest position.

    The distance vector is updated incrementally, but lazily: each row remembers how many centres
    its value includes, and only the rows that could be the next argmax (the largest stale values,
    which can only overestimate) are brought up to date; when too many would be, every row catches
    up at once with one blocked matrix product. The picks are those of the eager update (one
    matrix-vector product over all N rows per pick; same picks up to float rounding on exact
    near-ties) at a fraction of its memory traffic: N = 50,000, d = 512, M = budget = 1,000 takes
    seconds on two CPU cores.
    Returns int64 positions into ``unlabeled_emb``, in pick order.
    """
    x = as_float_embeddings(unlabeled_emb)
    n = x.shape[0]
    k, trivial = _trivial_selection(n, budget, x.device)
    if trivial is not None:
        return trivial
    lab = _labeled_like(labeled_emb, x)
    # distances do not change under translation; centring shrinks the norms, and with them the
    # cancellation error of ||a||^2 + ||b||^2 - 2ab in float32 (rows are centred block by block:
    # no second copy of the embeddings)
    shift = x.mean(dim=0)
    x_sq = sq_norms(x, shift)
    stamp = torch.zeros(n, dtype=torch.long, device=x.device)
    centres = x.new_empty((k, x.shape[1]))
    c_sq = x.new_empty(k)
    picks = torch.empty(k, dtype=torch.long, device=x.device)
    # min_sq_dists gives +inf everywhere when there is no labeled point
    bound = min_sq_dists(x, lab, chunk_size)
    for t in range(k):
        if t == 0:
            centre = int(torch.argmax(bound).item()) if lab.shape[0] > 0 else _randint(n, generator)
        elif t == 1 and lab.shape[0] == 0:  # every bound is +inf: one eager pass
            _refresh(x, shift, x_sq, bound, stamp, centres, c_sq, t, None)
            centre = int(torch.argmax(bound).item())
        else:
            centre = _farthest(x, shift, x_sq, bound, stamp, centres, c_sq, t)
        picks[t] = centre
        centres[t] = x[centre] - shift
        c_sq[t] = x_sq[centre]
        bound[centre] = -1.0  # a centre is never picked again, whatever the rounding
    return picks


# --------------------------------------------------------------------------- k-means


def nearest_distinct_points(x: Tensor, centres: Tensor) -> Tensor:
    """For each centre in order, the position of its nearest row of ``x`` not taken by an earlier centre."""
    x, centres = as_float_embeddings(x), as_float_embeddings(centres).to(x.device)
    k = centres.shape[0]
    if k > x.shape[0]:
        raise ValueError("more centres than points")
    shift = x.mean(dim=0)
    x, centres = x - shift, centres - shift
    x_sq, c_sq = sq_norms(x), sq_norms(centres)
    best = torch.full((k,), math.inf, device=x.device)
    best_pos = torch.zeros(k, dtype=torch.long, device=x.device)
    rows = rows_per_block(k)
    for i in range(0, x.shape[0], rows):
        block = block_sq_dists(x[i:i + rows], x_sq[i:i + rows], centres, c_sq)
        positions = torch.argmin(block, dim=0)
        values = block.gather(0, positions.unsqueeze(0)).squeeze(0)
        better = values < best  # strict: an earlier block keeps its ties
        best = torch.where(better, values, best)
        best_pos = torch.where(better, positions + i, best_pos)
    taken = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    out = best_pos.cpu().tolist()
    for j, pos in enumerate(out):
        if taken[pos]:  # shared with an earlier centre: the next closest unused point
            d = sq_dists_to(x, x_sq, centres[j])
            d[taken] = math.inf
            pos = int(torch.argmin(d).item())
            out[j] = pos
        taken[pos] = True
    return torch.tensor(out, dtype=torch.long, device=x.device)


def kmeans_select(emb: Tensor, budget: int, generator: torch.Generator, iterations: int = 20) -> Tensor:
    """k-means sampling: k = budget centres of the unlabeled embeddings (k-means++ start,
    Arthur & Vassilvitskii 2007, then Lloyd iterations), and for each centre the closest point
    (distinct: a centre whose closest point is taken gets its next closest unused point).

    The baseline of e.g. Zhdanov 2019 ("Diverse mini-batch active learning") and of the
    surveys of Zhan et al. 2022. Returns int64 positions into ``emb``, one per centre in centre order.
    """
    x = as_float_embeddings(emb)
    n = x.shape[0]
    k, trivial = _trivial_selection(n, budget, x.device)
    if trivial is not None:
        return trivial
    centres = kmeans(x, k, generator, iterations, local_trials=KMEANS_LOCAL_TRIALS).centroids
    return nearest_distinct_points(x, centres)


# --------------------------------------------------------------------------- TypiClust


def typicality(points: Tensor, k_neighbors: int = 20) -> Tensor:
    """1 / mean euclidean distance to the ``min(k_neighbors, len(points) - 1)`` nearest other points.

    A lone point (or one whose neighbours coincide with it) has typicality +inf.
    """
    x = as_float_embeddings(points)
    n = x.shape[0]
    k = min(k_neighbors, n - 1)
    if k <= 0:
        return torch.full((n,), math.inf, device=x.device)
    x = x - x.mean(dim=0)  # a cluster is small around its mean: centring keeps the distances accurate
    x_sq = sq_norms(x)
    out = torch.empty(n, device=x.device)
    rows = rows_per_block(n)
    for i in range(0, n, rows):
        block = block_sq_dists(x[i:i + rows], x_sq[i:i + rows], x, x_sq)
        r = torch.arange(block.shape[0], device=x.device)
        block[r, r + i] = math.inf  # not its own neighbour
        mean_dist = block.topk(k, dim=1, largest=False).values.sqrt_().mean(dim=1)
        out[i:i + rows] = 1.0 / mean_dist
    return out


def typiclust_cluster_order(sizes: np.ndarray, labeled_count: np.ndarray,
                            min_cluster_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, dropped) cluster ids, each in the authors' visiting order: fewest labeled points, then
    largest, then lowest id. Kept: more than ``min_cluster_size`` points (labeled + unlabeled)."""
    ids = np.arange(len(sizes))
    ordered = ids[np.lexsort((ids, -sizes, labeled_count))]  # lexsort: the last key is the primary one
    large = sizes[ordered] > min_cluster_size
    return ordered[large], ordered[~large]


def _next_cluster(order: np.ndarray, cursor: int, available: np.ndarray) -> tuple[int, int]:
    """(first cluster of ``order`` from ``cursor`` on, cyclically, with an unpicked unlabeled point; the
    cursor after it), or (-1, cursor) when every cluster of ``order`` is used up."""
    for step in range(len(order)):
        c = int(order[(cursor + step) % len(order)])
        if available[c] > 0:
            return c, cursor + step + 1
    return -1, cursor


def typiclust_select(unlabeled_emb: Tensor, labeled_emb: Tensor | None, budget: int,
                     generator: torch.Generator, k_neighbors: int = 20, max_clusters: int = 500,
                     min_cluster_size: int = 5, iterations: int = 20) -> Tensor:
    """TypiClust (Hacohen, Dekel & Weinshall, "Active Learning on a Budget: Opposite Strategies
    Suit High and Low Budgets", ICML 2022), following the authors' selection code
    (github.com/avihu111/TypiClust, ``deep-al/pycls/al/typiclust.py``).

    All points (unlabeled then labeled) are clustered by k-means into ``min(|L| + budget,
    max_clusters)`` clusters (the authors' cap of 500). Clusters of at most ``min_cluster_size``
    points (labeled + unlabeled; the authors' ``MIN_CLUSTER_SIZE = 5``) are dropped, and the rest
    are ordered once by fewest labeled points, then largest, then lowest id
    (:func:`typiclust_cluster_order`). The ``budget`` picks go round-robin through that order;
    each takes the most typical point of the cluster's not yet labeled or picked members,
    typicality = 1 / mean distance to its ``min(k_neighbors, m // 2)`` nearest neighbours among
    those ``m`` members (the authors' ``K_NN = 20``; the only point left of a cluster is taken).
    Deviations, for cases where the authors' code fails: a cluster without an unlabeled point left
    is skipped, and when every kept cluster is used up (or none is larger than ``min_cluster_size``)
    the dropped ones are visited in the same way.
    Simplified: plain k-means (k-means++ + Lloyd) on the given embeddings, not the paper's
    self-supervised features or scikit-learn's (MiniBatch)KMeans. Returns int64 positions
    into ``unlabeled_emb``, in pick order.
    """
    u = as_float_embeddings(unlabeled_emb)
    n = u.shape[0]
    k, trivial = _trivial_selection(n, budget, u.device)
    if trivial is not None:
        return trivial
    lab = _labeled_like(labeled_emb, u)
    m = lab.shape[0]
    x = torch.cat([u, lab]) if m else u
    n_clusters = max(1, min(m + k, max_clusters, n + m))
    labels = kmeans(x, n_clusters, generator, iterations, local_trials=KMEANS_LOCAL_TRIALS).labels
    labels_np = labels.cpu().numpy()
    sizes = np.bincount(labels_np, minlength=n_clusters)
    kept, dropped = typiclust_cluster_order(sizes, np.bincount(labels_np[n:], minlength=n_clusters),
                                            min_cluster_size)
    remaining = labels_np[:n].copy()  # cluster of each unlabeled point, -1 once picked
    available = np.bincount(remaining, minlength=n_clusters)
    cursors = [0, 0]
    picks: list[int] = []
    for _ in range(k):
        c, cursors[0] = _next_cluster(kept, cursors[0], available)
        if c < 0:
            c, cursors[1] = _next_cluster(dropped, cursors[1], available)
        members = np.flatnonzero(remaining == c)
        rows = torch.from_numpy(members).to(x.device)
        typ = typicality(x.index_select(0, rows), min(k_neighbors, len(members) // 2))
        pos = int(members[int(torch.argmax(typ).item())])
        picks.append(pos)
        remaining[pos] = -1
        available[c] -= 1
    return torch.tensor(picks, dtype=torch.long, device=u.device)


# --------------------------------------------------------------------------- ProbCover


def _l2_normalize(x: Tensor) -> Tensor:
    return torch.nn.functional.normalize(x, dim=1)


def estimate_delta(x: Tensor, n_clusters: int, generator: torch.Generator, purity: float = 0.95,
                   sample: int = 2000, iterations: int = 20) -> float:
    """ProbCover's ball radius: the largest delta whose ball purity is at least ``purity``.

    Yehuda et al. 2022 label the points by k-means (k = number of classes) and call the ball
    B_delta(x) pure when every point in it shares x's cluster. A ball is pure exactly when
    delta <= r(x), the distance from x to the nearest point of another cluster, so the largest
    delta with purity >= alpha is the floor((1 - alpha) n)-th smallest r(x) -- no grid search.
    Simplified: r(x) is computed for a random sample of ``sample`` points (against all points),
    and the embeddings are used as given (callers pass them L2-normalised). Falls back to
    ``PROBCOVER_FALLBACK_DELTA`` when there is a single cluster.
    """
    x = as_float_embeddings(x)
    t = x.shape[0]
    n_clusters = min(n_clusters, t)
    if n_clusters < 2:
        return PROBCOVER_FALLBACK_DELTA
    labels = kmeans(x, n_clusters, generator, iterations, local_trials=KMEANS_LOCAL_TRIALS).labels
    if t > sample:
        centres = torch.sort(_randperm(t, generator, x.device)[:sample]).values
    else:
        centres = torch.arange(t, device=x.device)
    x_sq = sq_norms(x)
    r = torch.full((centres.numel(),), math.inf, device=x.device)
    rows = rows_per_block(t)
    for i in range(0, centres.numel(), rows):
        idx = centres[i:i + rows]
        block = block_sq_dists(x.index_select(0, idx), x_sq[idx], x, x_sq)
        block[labels[idx].unsqueeze(1) == labels.unsqueeze(0)] = math.inf
        r[i:i + rows] = block.amin(dim=1)
    r_sorted = torch.sort(r).values
    j = min(math.floor((1.0 - purity) * r_sorted.numel()), r_sorted.numel() - 1)
    value = float(r_sorted[j].item())
    if not math.isfinite(value):
        return PROBCOVER_FALLBACK_DELTA
    return math.sqrt(value)


def ball_graph(x: Tensor, delta: float, max_edges: int = 1 << 24) -> tuple[Tensor, Tensor] | None:
    """Sparse directed edges (src, dst) with ||x_src - x_dst|| < delta, self-loops included.

    Built over row blocks, so memory is the edges plus one block; src comes out sorted.
    Returns None when the graph would have more than ``max_edges`` edges.
    """
    t = x.shape[0]
    x_sq = sq_norms(x)
    srcs: list[Tensor] = []
    dsts: list[Tensor] = []
    count = 0
    rows = rows_per_block(t)
    for i in range(0, t, rows):
        block = block_sq_dists(x[i:i + rows], x_sq[i:i + rows], x, x_sq)
        mask = block < delta * delta
        r = torch.arange(block.shape[0], device=x.device)
        mask[r, r + i] = True  # a point covers itself
        del block
        src, dst = torch.nonzero(mask, as_tuple=True)
        count += src.numel()
        if count > max_edges:
            return None
        srcs.append(src + i)
        dsts.append(dst)
    return torch.cat(srcs), torch.cat(dsts)


def _ranges(ptr: Tensor, nodes: Tensor) -> Tensor:
    """Concatenated edge positions ptr[v]:ptr[v+1] of the given nodes (CSR rows)."""
    starts, ends = ptr[nodes], ptr[nodes + 1]
    lengths = ends - starts
    total = int(lengths.sum().item())
    if total == 0:
        return empty_positions(ptr.device)
    offsets = torch.cumsum(lengths, dim=0) - lengths
    return torch.repeat_interleave(starts - offsets, lengths) + torch.arange(total, device=ptr.device)


def probcover_select(unlabeled_emb: Tensor, labeled_emb: Tensor | None, budget: int,
                     generator: torch.Generator, delta: float | None = None, n_clusters: int = 10,
                     purity: float = 0.95, max_edges: int = 1 << 24) -> Tensor:
    """ProbCover (Yehuda, Dekel, Hacohen & Weinshall, "Active Learning Through a Covering Lens",
    NeurIPS 2022): greedy maximum coverage of delta-balls.

    Embeddings are L2-normalised; the graph has an edge x -> y for ||x - y|| < delta (self-loops
    included), kept sparse (edge lists, built in row blocks). Points in the balls of labeled
    points start covered; then ``budget`` times the point whose ball holds the most uncovered
    points is picked (ties: lowest position) and its ball becomes covered, with degrees updated
    incrementally over the new points' incoming edges. When nothing is left uncovered the rest
    of the budget is drawn uniformly from the unpicked unlabeled points.
    Simplified: with ``delta=None``, :func:`estimate_delta` chooses it from k-means labels with
    ``n_clusters`` clusters (the number of classes, unknown here: the strategy class passes the
    width of the network's output) on a sample of ball centres; if the graph would exceed
    ``max_edges`` edges (memory), delta is shrunk by 0.8 until it fits, with a warning.
    Returns int64 positions into ``unlabeled_emb``, in pick order.
    """
    u = as_float_embeddings(unlabeled_emb)
    n = u.shape[0]
    k, trivial = _trivial_selection(n, budget, u.device)
    if trivial is not None:
        return trivial
    lab = _labeled_like(labeled_emb, u)
    t = n + lab.shape[0]
    x = _l2_normalize(torch.cat([u, lab]) if lab.shape[0] else u)
    if delta is None:
        delta = estimate_delta(x, n_clusters, generator, purity)
    graph = ball_graph(x, delta, max_edges)
    while graph is None:
        delta *= 0.8
        warnings.warn(f"ProbCover graph over {max_edges} edges; shrinking delta to {delta:.4g}", stacklevel=2)
        graph = ball_graph(x, delta, max_edges)
    src, dst = graph
    dev = x.device
    out_ptr = torch.zeros(t + 1, dtype=torch.long, device=dev)
    out_ptr[1:] = torch.cumsum(torch.bincount(src, minlength=t), dim=0)
    by_dst = torch.argsort(dst, stable=True)
    in_src = src[by_dst]
    in_ptr = torch.zeros(t + 1, dtype=torch.long, device=dev)
    in_ptr[1:] = torch.cumsum(torch.bincount(dst, minlength=t), dim=0)

    covered = torch.zeros(t, dtype=torch.bool, device=dev)
    if t > n:
        covered[dst[_ranges(out_ptr, torch.arange(n, t, device=dev))]] = True
    degree = torch.bincount(src[~covered[dst]], minlength=t)
    picks: list[Tensor] = []
    for _ in range(k):
        best = torch.argmax(degree)
        if int(degree[best].item()) == 0:
            break
        ball = dst[out_ptr[best]:out_ptr[best + 1]]
        new = ball[~covered[ball]]
        covered[new] = True
        degree -= torch.bincount(in_src[_ranges(in_ptr, new)], minlength=t)
        picks.append(best.reshape(1))
    chosen = torch.cat(picks) if picks else empty_positions(dev)
    if chosen.numel() < k:  # everything is covered: fill uniformly at random
        free = torch.ones(n, dtype=torch.bool, device=dev)
        free[chosen] = False
        rest = torch.nonzero(free).flatten()
        chosen = torch.cat([chosen, rest[_randperm(rest.numel(), generator, dev)[:k - chosen.numel()]]])
    return chosen


# --------------------------------------------------------------------------- strategies


def _embeddings(ctx: SelectionContext) -> tuple[Tensor, Tensor, Tensor]:
    """(unlabeled probabilities, unlabeled embeddings, labeled embeddings), checked against ctx."""
    pool = ctx.require_pool()
    probs, unlabeled = pool.unlabeled_outputs()
    if unlabeled.shape[0] != len(ctx.unlabeled):
        raise RuntimeError("embeddings are not aligned with the unlabeled pool")
    empty = unlabeled.new_zeros((0, unlabeled.shape[1]))
    labeled = pool.labeled_outputs()[1] if len(ctx.labeled) else empty
    return probs, unlabeled, labeled


def _to_pool(ctx: SelectionContext, positions: Tensor, budget: int) -> np.ndarray:
    pos = positions.cpu().numpy().astype(np.int64)
    k = min(budget, len(ctx.unlabeled))
    if len(pos) != k or len(np.unique(pos)) != k:
        raise RuntimeError(f"selection returned {len(pos)} positions ({len(np.unique(pos))} distinct), expected {k}")
    return np.asarray(ctx.unlabeled)[pos].astype(np.int64)


class _EmbeddingStrategy(Strategy):

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        if min(budget, len(ctx.unlabeled)) <= 0:
            return np.empty(0, dtype=np.int64)
        probs, unlabeled, labeled = _embeddings(ctx)
        generator = ctx.torch_generator(unlabeled.device)
        return _to_pool(ctx, self.positions(probs, unlabeled, labeled, budget, generator), budget)

    def positions(self, probs: Tensor, unlabeled: Tensor, labeled: Tensor, budget: int,
                  generator: torch.Generator) -> Tensor:
        raise NotImplementedError


class CoreSet(_EmbeddingStrategy):
    """k-center greedy on penultimate embeddings (Sener & Savarese 2018)."""

    name = "coreset"

    def __init__(self, chunk_size: int = 4096) -> None:
        self.chunk_size = chunk_size

    def positions(self, probs: Tensor, unlabeled: Tensor, labeled: Tensor, budget: int,
                  generator: torch.Generator) -> Tensor:
        return coreset_select(unlabeled, labeled, budget, generator, self.chunk_size)


class KMeansSampling(_EmbeddingStrategy):
    """The unlabeled samples closest to the k-means centres (k = budget) of the unlabeled embeddings."""

    name = "kmeans"

    def __init__(self, iterations: int = 20) -> None:
        self.iterations = iterations

    def positions(self, probs: Tensor, unlabeled: Tensor, labeled: Tensor, budget: int,
                  generator: torch.Generator) -> Tensor:
        return kmeans_select(unlabeled, budget, generator, self.iterations)


class TypiClust(_EmbeddingStrategy):
    """The most typical sample of each least-covered cluster (Hacohen et al. 2022)."""

    name = "typiclust"

    def __init__(self, k_neighbors: int = 20, max_clusters: int = 500, min_cluster_size: int = 5,
                 iterations: int = 20) -> None:
        self.k_neighbors, self.max_clusters = k_neighbors, max_clusters
        self.min_cluster_size, self.iterations = min_cluster_size, iterations

    def positions(self, probs: Tensor, unlabeled: Tensor, labeled: Tensor, budget: int,
                  generator: torch.Generator) -> Tensor:
        return typiclust_select(unlabeled, labeled, budget, generator, self.k_neighbors, self.max_clusters,
                                self.min_cluster_size, self.iterations)


class ProbCover(_EmbeddingStrategy):
    """Greedy maximum coverage of delta-balls on L2-normalised embeddings (Yehuda et al. 2022).

    ``n_clusters`` for the purity heuristic defaults to the number of classes, read off the
    width of the network's probability output.
    """

    name = "probcover"

    def __init__(self, delta: float | None = None, n_clusters: int | None = None, purity: float = 0.95,
                 max_edges: int = 1 << 24) -> None:
        self.delta, self.n_clusters, self.purity, self.max_edges = delta, n_clusters, purity, max_edges

    def positions(self, probs: Tensor, unlabeled: Tensor, labeled: Tensor, budget: int,
                  generator: torch.Generator) -> Tensor:
        n_clusters = self.n_clusters
        if n_clusters is None:
            n_clusters = int(probs.shape[1]) if probs.ndim == 2 and probs.shape[1] > 1 else 10
        return probcover_select(unlabeled, labeled, budget, generator, self.delta, n_clusters, self.purity,
                                self.max_edges)
