"""Diversity strategies on hand-made embeddings: CoreSet, k-means, TypiClust, ProbCover."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_valid_selection as assert_valid

from benchmark.ops.kmeans import kmeans
from benchmark.perf.dense_coreset import dense_kcenter_greedy
from benchmark.strategies import STRATEGIES
from benchmark.strategies.base import SelectionContext, Strategy
from benchmark.strategies.diversity import (
    KMEANS_LOCAL_TRIALS,
    ball_graph,
    coreset_select,
    estimate_delta,
    kmeans_select,
    nearest_distinct_points,
    probcover_select,
    typicality,
    typiclust_select,
)

NAMES = ["coreset", "kmeans", "typiclust", "probcover"]
POOL_SIZE = 400
DIM = 8


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def blobs(n_blobs: int, per_blob: int, dim: int, spread: float, noise: float,
          seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points float32, blob of each point, blob centres), well separated for a large spread."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_blobs, dim)) * spread
    blob = np.repeat(np.arange(n_blobs), per_blob)
    points = centres[blob] + rng.normal(size=(len(blob), dim)) * noise
    return points.astype(np.float32), blob, centres


class FakePool:
    """What the strategies use of a PoolModel: outputs of the unlabeled and labeled pool."""

    def __init__(self, embeddings: np.ndarray, unlabeled: np.ndarray, labeled: np.ndarray,
                 classes: int = 4) -> None:
        self.emb = torch.from_numpy(embeddings)
        self.unlabeled, self.labeled = unlabeled, labeled
        self.probs = torch.full((len(embeddings), classes), 1.0 / classes)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def _outputs(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(np.asarray(index, dtype=np.int64))
        return self.probs[idx], self.emb[idx]

    def unlabeled_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._outputs(self.unlabeled)

    def labeled_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._outputs(self.labeled)


def pool_data(seed: int = 0) -> np.ndarray:
    points, _, _ = blobs(8, POOL_SIZE // 8, DIM, spread=4.0, noise=1.0, seed=seed)
    return points[np.random.default_rng(seed + 1).permutation(POOL_SIZE)]


def make_ctx(unlabeled: np.ndarray, labeled: np.ndarray, seed: int = 0,
             embeddings: np.ndarray | None = None) -> SelectionContext:
    emb = pool_data() if embeddings is None else embeddings
    pool = FakePool(emb, unlabeled, labeled)
    return SelectionContext(unlabeled, labeled, np.random.default_rng(seed), round_index=int(len(labeled) > 0),
                            pool=pool)  # type: ignore[arg-type]


def split(n_unlabeled: int, n_labeled: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(POOL_SIZE)
    return order[:n_unlabeled], order[n_unlabeled:n_unlabeled + n_labeled]


def run(name: str, unlabeled: np.ndarray, labeled: np.ndarray, budget: int, seed: int = 0,
        **params: object) -> np.ndarray:
    strategy = STRATEGIES.get(name)(**params)
    assert isinstance(strategy, Strategy)
    return strategy.select(make_ctx(unlabeled, labeled, seed), budget)




# --------------------------------------------------------------------------- every strategy


@pytest.mark.parametrize("name", NAMES)
def test_registry_entry(name: str) -> None:
    cls = STRATEGIES.get(name)
    assert issubclass(cls, Strategy)
    assert cls.name == name
    assert cls.needs == ("embeddings",)
    assert STRATEGIES.entry(name).info.needs == ("embeddings",)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("budget", [1, 9, 60])
def test_selection_is_valid_and_deterministic(name: str, budget: int) -> None:
    unlabeled, labeled = split(200, 30)
    picked = run(name, unlabeled, labeled, budget, seed=5)
    assert_valid(picked, unlabeled, labeled, budget)
    assert run(name, unlabeled, labeled, budget, seed=5).tolist() == picked.tolist()


@pytest.mark.parametrize("name", NAMES)
def test_round_zero_with_an_empty_labeled_set(name: str) -> None:
    unlabeled, _ = split(300, 0)
    labeled = np.empty(0, dtype=np.int64)
    picked = run(name, unlabeled, labeled, 20, seed=1)
    assert_valid(picked, unlabeled, labeled, 20)
    assert run(name, unlabeled, labeled, 20, seed=1).tolist() == picked.tolist()
    # the seed matters on round 0 (a random first centre, a random k-means++ start)
    others = {tuple(sorted(run(name, unlabeled, labeled, 20, seed=s).tolist())) for s in range(2, 6)}
    assert len(others | {tuple(sorted(picked.tolist()))}) > 1


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("extra", [0, 1, 50])
def test_budget_at_least_the_pool_takes_the_whole_pool(name: str, extra: int) -> None:
    unlabeled, labeled = split(25, 10)
    picked = run(name, unlabeled, labeled, len(unlabeled) + extra)
    assert sorted(picked.tolist()) == sorted(unlabeled.tolist())


@pytest.mark.parametrize("name", NAMES)
def test_zero_budget_and_missing_pool(name: str) -> None:
    unlabeled, labeled = split(30, 5)
    assert run(name, unlabeled, labeled, 0).tolist() == []
    ctx = SelectionContext(unlabeled, labeled, np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="needs the network"):
        STRATEGIES.get(name)().select(ctx, 3)


@pytest.mark.parametrize("name", NAMES)
def test_duplicate_embeddings_still_give_distinct_picks(name: str) -> None:
    emb = np.zeros((POOL_SIZE, DIM), dtype=np.float32)
    emb[::2] = 1.0  # two distinct points in all
    unlabeled, labeled = split(40, 4)
    picked = STRATEGIES.get(name)().select(make_ctx(unlabeled, labeled, embeddings=emb), 15)
    assert_valid(picked, unlabeled, labeled, 15)


# --------------------------------------------------------------------------- CoreSet


def brute_kcenter(u: np.ndarray, lab: np.ndarray, budget: int, first: int | None) -> list[int]:
    everything = np.concatenate([u, lab]).astype(np.float64)
    dist = np.sqrt(((u.astype(np.float64)[:, None, :] - everything[None]) ** 2).sum(-1))
    n = len(u)
    nearest = dist[:, n:].min(axis=1) if len(lab) else np.full(n, np.inf)
    picks = []
    for t in range(budget):
        c = first if t == 0 and first is not None else int(np.argmax(nearest))
        picks.append(c)
        nearest = np.minimum(nearest, dist[:, c])
        nearest[c] = -1.0
    return picks


def first_draw(n: int, seed: int) -> int:
    return int(torch.randint(n, (1,), generator=gen(seed)).item())


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_labeled", [0, 1, 25])
def test_coreset_equals_brute_force_kcenter_greedy(seed: int, n_labeled: int) -> None:
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(300, 6)).astype(np.float32)
    lab = rng.normal(size=(n_labeled, 6)).astype(np.float32)
    picks = coreset_select(torch.from_numpy(u), torch.from_numpy(lab), 80, gen(seed))
    assert picks.dtype == torch.int64
    first = first_draw(300, seed) if n_labeled == 0 else None
    assert picks.tolist() == brute_kcenter(u, lab, 80, first)


def test_coreset_equals_brute_force_on_clustered_data() -> None:
    # far-apart clusters: the lazy update has to catch up on every row now and then
    points, _, _ = blobs(12, 40, 5, spread=30.0, noise=1.0, seed=7)
    u, lab = points[:450], points[450:]
    picks = coreset_select(torch.from_numpy(u), torch.from_numpy(lab), 60, gen())
    assert picks.tolist() == brute_kcenter(u, lab, 60, None)


@pytest.mark.parametrize(("spread", "n_labeled"), [(0.0, 0), (0.0, 40), (25.0, 40)])
def test_coreset_lazy_updates_equal_brute_force_on_a_larger_pool(spread: float, n_labeled: int) -> None:
    # enough rows that only the few largest stale distances are refreshed before most picks
    points, _, _ = blobs(20, 80, 6, spread=spread, noise=1.0, seed=5)
    u, lab = points[n_labeled:], points[:n_labeled]
    picks = coreset_select(torch.from_numpy(u), torch.from_numpy(lab), 120, gen(6))
    first = first_draw(len(u), 6) if n_labeled == 0 else None
    assert picks.tolist() == brute_kcenter(u, lab, 120, first)


@pytest.mark.parametrize("n_labeled", [0, 30])
def test_coreset_chunk_size_does_not_change_the_picks(n_labeled: int) -> None:
    rng = np.random.default_rng(11)
    u = torch.from_numpy(rng.normal(size=(200, 10)).astype(np.float32))
    lab = torch.from_numpy(rng.normal(size=(n_labeled, 10)).astype(np.float32))
    reference = coreset_select(u, lab, 40, gen(4), chunk_size=4096).tolist()
    for chunk in (3, 16, 64):
        assert coreset_select(u, lab, 40, gen(4), chunk_size=chunk).tolist() == reference


@pytest.mark.parametrize("n_labeled", [0, 20])
def test_dense_reference_agrees_with_coreset(n_labeled: int) -> None:
    rng = np.random.default_rng(21)
    u = torch.from_numpy(rng.normal(size=(250, 7)).astype(np.float32))
    lab = torch.from_numpy(rng.normal(size=(n_labeled, 7)).astype(np.float32))
    dense = dense_kcenter_greedy(u, lab, 70, gen(9))
    assert dense.tolist() == coreset_select(u, lab, 70, gen(9)).tolist()
    assert len(set(dense.tolist())) == 70


def test_coreset_first_pick_is_the_point_farthest_from_the_labeled_set() -> None:
    u = torch.tensor([[0.0, 0.0], [1.0, 0.0], [9.0, 9.0], [5.0, 5.0]])
    lab = torch.tensor([[0.0, 1.0]])
    assert coreset_select(u, lab, 3, gen()).tolist() == [2, 3, 1]


# --------------------------------------------------------------------------- k-means


def test_kmeans_picks_the_point_nearest_each_blob_centre() -> None:
    points, blob, _ = blobs(6, 30, 4, spread=20.0, noise=0.5, seed=3)
    picks = kmeans_select(torch.from_numpy(points), 6, gen(2)).numpy()
    assert sorted(blob[picks].tolist()) == list(range(6)), "one point per blob"
    for p in picks:
        members = np.nonzero(blob == blob[p])[0]
        mean = points[members].astype(np.float64).mean(axis=0)
        nearest = members[np.argmin(((points[members] - mean) ** 2).sum(axis=1))]
        assert p == nearest


def test_nearest_distinct_points_moves_a_shared_point_to_the_next_closest() -> None:
    x = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    centres = torch.tensor([[0.2], [0.1], [9.0]])  # both first centres are closest to point 0
    assert nearest_distinct_points(x, centres).tolist() == [0, 1, 3]


# --------------------------------------------------------------------------- TypiClust


def cored_blobs(n_blobs: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blobs of a dense core (8 points) in a wide halo (22 points); returns points, blob, is_core."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_blobs, 4)) * 40.0
    points, blob, core = [], [], []
    for b in range(n_blobs):
        for is_core, count, noise in ((True, 8, 0.05), (False, 22, 2.0)):
            points.append(centres[b] + rng.normal(size=(count, 4)) * noise)
            blob += [b] * count
            core += [is_core] * count
    return np.concatenate(points).astype(np.float32), np.array(blob), np.array(core)


def brute_typicality(points: np.ndarray, k: int) -> np.ndarray:
    d = np.sqrt(((points[:, None].astype(np.float64) - points[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    k = min(k, len(points) - 1)
    return 1.0 / np.sort(d, axis=1)[:, :k].mean(axis=1)


def test_typicality_matches_brute_force() -> None:
    points = np.random.default_rng(2).normal(size=(40, 3)).astype(np.float32)
    for k in (1, 5, 20, 100):
        np.testing.assert_allclose(typicality(torch.from_numpy(points), k).numpy(),
                                   brute_typicality(points, k), rtol=1e-4)
    assert typicality(torch.zeros(1, 3)).tolist() == [float("inf")]


def test_typiclust_picks_the_most_typical_point_of_each_blob() -> None:
    points, blob, core = cored_blobs(5, seed=4)
    picks = typiclust_select(torch.from_numpy(points), None, 5, gen(3)).numpy()
    assert sorted(blob[picks].tolist()) == list(range(5)), "one point per blob"
    for p in picks:
        members = np.nonzero(blob == blob[p])[0]
        assert core[p], "a dense-core point"
        # the authors' neighbour count: min(20, cluster size // 2) = 15 for these 30-point blobs
        assert p == members[np.argmax(brute_typicality(points[members], min(20, len(members) // 2)))]


def test_typiclust_goes_to_the_clusters_without_labels() -> None:
    points, blob, _ = cored_blobs(5, seed=6)
    labeled_rows = np.array([0, 30])  # one labeled point in blobs 0 and 1
    rest = np.setdiff1d(np.arange(len(points)), labeled_rows)
    picks = typiclust_select(torch.from_numpy(points[rest]), torch.from_numpy(points[labeled_rows]), 3,
                             gen(1)).numpy()
    assert sorted(blob[rest][picks].tolist()) == [2, 3, 4]


def test_typiclust_caps_the_number_of_clusters() -> None:
    points, _, _ = cored_blobs(3, seed=1)
    u = torch.from_numpy(points)
    # 2 clusters for 3 blobs: the picks alternate over the 2 clusters, largest first
    picks = typiclust_select(u, None, 4, gen(0), max_clusters=2)
    labels = kmeans(u, 2, gen(0), local_trials=KMEANS_LOCAL_TRIALS).labels
    assert len(set(picks.tolist())) == 4
    counts = np.bincount(labels[picks].numpy(), minlength=2)
    assert counts.tolist() == [2, 2]


# --------------------------------------------------------------------------- ProbCover


def sphere_blobs(sizes: list[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Tight blobs around orthogonal unit directions (pairwise distance sqrt 2 after normalising)."""
    rng = np.random.default_rng(seed)
    dim = 16
    points, blob = [], []
    for b, size in enumerate(sizes):
        direction = np.zeros(dim)
        direction[b] = 1.0
        points.append(direction + rng.normal(size=(size, dim)) * 0.02)
        blob += [b] * size
    return np.concatenate(points).astype(np.float32), np.array(blob)


def test_probcover_one_ball_per_blob() -> None:
    points, blob = sphere_blobs([20, 30, 25, 15, 40], seed=0)
    picks = probcover_select(torch.from_numpy(points), None, 5, gen(), delta=0.5).numpy()
    assert sorted(blob[picks].tolist()) == [0, 1, 2, 3, 4]
    assert blob[picks[0]] == 4, "the largest ball first"


def test_probcover_does_not_repick_covered_points() -> None:
    points, blob = sphere_blobs([30, 30, 30, 30], seed=1)
    is_labeled = np.zeros(len(points), dtype=bool)
    is_labeled[[3, 35]] = True  # blobs 0 and 1 are covered by labeled points
    u, lab, ublob = points[~is_labeled], points[is_labeled], blob[~is_labeled]
    picks = probcover_select(torch.from_numpy(u), torch.from_numpy(lab), 2, gen(), delta=0.5).numpy()
    assert sorted(ublob[picks].tolist()) == [2, 3]
    # beyond full coverage the rest is random, still distinct and unlabeled
    more = probcover_select(torch.from_numpy(u), torch.from_numpy(lab), 10, gen(), delta=0.5).numpy()
    assert sorted(ublob[more[:2]].tolist()) == [2, 3]
    assert len(set(more.tolist())) == 10 and more.max() < len(u)


def test_probcover_estimated_delta_separates_the_blobs() -> None:
    points, blob = sphere_blobs([30, 30, 30], seed=2)
    x = torch.nn.functional.normalize(torch.from_numpy(points), dim=1)
    dist = torch.cdist(x.double(), x.double()).numpy()
    other = blob[:, None] != blob[None, :]

    def purity(delta: float) -> float:  # share of balls holding no point of another blob
        return float(np.mean(~((dist < delta) & other).any(axis=1)))

    delta = estimate_delta(x, 3, gen())
    assert dist[~other].max() < delta, "a ball reaches across its whole blob"
    assert purity(delta * (1 - 1e-4)) >= 0.95 > purity(delta * (1 + 1e-3)), "the largest delta, purity >= 0.95"
    picks = probcover_select(torch.from_numpy(points), None, 3, gen(), n_clusters=3).numpy()
    assert sorted((picks // 30).tolist()) == [0, 1, 2]


def test_ball_graph_edges_and_the_edge_cap() -> None:
    x = torch.tensor([[0.0, 0.0], [0.5, 0.0], [3.0, 0.0]])
    src, dst = ball_graph(x, 1.0)
    assert sorted(zip(src.tolist(), dst.tolist(), strict=True)) == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2)]
    assert ball_graph(x, 1.0, max_edges=4) is None
    src, dst = ball_graph(x, 0.0)  # a point always covers itself
    assert src.tolist() == dst.tolist() == [0, 1, 2]
    points, _ = sphere_blobs([20, 20], seed=3)
    with pytest.warns(UserWarning, match="shrinking delta"):
        picks = probcover_select(torch.from_numpy(points), None, 5, gen(), delta=2.5, max_edges=500)
    assert len(set(picks.tolist())) == 5


# --------------------------------------------------------------------------- CUDA


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_every_selection_on_cuda() -> None:
    rng = np.random.default_rng(0)
    u = torch.from_numpy(rng.normal(size=(500, 16)).astype(np.float32)).cuda()
    lab = torch.from_numpy(rng.normal(size=(40, 16)).astype(np.float32)).cuda()
    cuda_gen = lambda: torch.Generator(device="cuda").manual_seed(3)  # noqa: E731
    for fn in (lambda g: coreset_select(u, lab, 30, g), lambda g: kmeans_select(u, 30, g),
               lambda g: typiclust_select(u, lab, 30, g), lambda g: probcover_select(u, lab, 30, g)):
        picks = fn(cuda_gen())
        assert picks.device.type == "cuda" and len(set(picks.tolist())) == 30
        assert fn(cuda_gen()).tolist() == picks.tolist()
    assert (coreset_select(u, lab, 30, cuda_gen()).tolist()
            == coreset_select(u.cpu(), lab.cpu(), 30, gen(3)).tolist())
