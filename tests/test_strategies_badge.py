"""BADGE and Cluster-Margin: factorised gradient-embedding distances, seeding, clustering, validity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_valid_selection as assert_valid

from benchmark.perf.dense_badge import dense_badge_select, dense_gradient_embeddings
from benchmark.strategies import STRATEGIES
from benchmark.strategies import badge as badge_module
from benchmark.strategies.badge import BADGE, badge_seeding, badge_select, sample_proportional
from benchmark.strategies.base import SelectionContext, Strategy
from benchmark.strategies.cluster_margin import (
    ClusterMargin,
    cluster_margin_select,
    hac_labels,
    margins,
    round_robin,
)

# --------------------------------------------------------------------------- helpers


def random_inputs(seed: int, n: int, c: int, d: int, dtype: torch.dtype = torch.float64,
                  sharpness: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(sharpness * torch.randn(n, c, generator=g, dtype=dtype), dim=1)
    return probs, torch.randn(n, d, generator=g, dtype=dtype)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class FakePool:
    """The part of PoolModel the strategies use."""

    def __init__(self, probs: torch.Tensor, embeddings: torch.Tensor) -> None:
        self.probs, self.embeddings = probs, embeddings
        self.calls = 0

    @property
    def device(self) -> torch.device:
        return self.probs.device

    def unlabeled_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        return self.probs, self.embeddings

    def labeled_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise AssertionError("these strategies do not look at the labeled set")


def make_ctx(probs: torch.Tensor, embeddings: torch.Tensor, unlabeled: np.ndarray, labeled: np.ndarray,
             seed: int = 0, round_index: int = 1) -> SelectionContext:
    return SelectionContext(unlabeled, labeled, np.random.default_rng(seed), round_index=round_index,
                            pool=FakePool(probs, embeddings))  # type: ignore[arg-type]




def one_hot_rows(rows: int, c: int, seed: int) -> torch.Tensor:
    labels = torch.randint(0, c, (rows,), generator=gen(seed))
    return torch.nn.functional.one_hot(labels, c).double()


# --------------------------------------------------------------------------- BADGE: distances


@pytest.mark.parametrize("steps", [1, 2, 5])
@pytest.mark.parametrize("c", [3, 10])
def test_factorised_distances_equal_dense_gradient_embeddings(steps: int, c: int) -> None:
    probs, emb = random_inputs(7 + c, 120, c, 9)
    positions, distances = badge_seeding(probs, emb, steps, gen(3))
    g = dense_gradient_embeddings(probs, emb)
    assert g.shape == (120, c * 9)
    dense = ((g[:, None, :] - g[positions][None, :, :]) ** 2).sum(-1).min(dim=1).values
    assert torch.all(distances[positions] == 0)
    torch.testing.assert_close(distances, dense, rtol=1e-10, atol=1e-10 * float(dense.max()))


def test_gradient_embedding_is_the_cross_entropy_weight_gradient() -> None:
    # autograd on a real last layer: d CE(W e, argmax) / dW == (p - onehot) (x) e, without the bias
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 4).double()
    emb = torch.randn(5, 6, dtype=torch.float64)
    probs = torch.softmax(layer(emb), dim=1).detach()
    g = dense_gradient_embeddings(probs, emb)
    for i in range(5):
        layer.zero_grad()
        logits = layer(emb[i:i + 1])
        torch.nn.functional.cross_entropy(logits, logits.argmax(dim=1)).backward()
        torch.testing.assert_close(g[i], layer.weight.grad.flatten())


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("c", [3, 10])
def test_badge_picks_the_same_indices_as_the_dense_implementation(seed: int, c: int) -> None:
    probs, emb = random_inputs(seed, 250, c, 12)
    ours = badge_select(probs, emb, 60, gen(seed))
    dense = dense_badge_select(probs, emb, 60, gen(seed))
    assert ours.tolist() == dense.tolist()


def test_badge_matches_dense_in_float32() -> None:
    probs, emb = random_inputs(11, 300, 10, 16, dtype=torch.float32)
    assert badge_select(probs, emb, 50, gen(5)).tolist() == dense_badge_select(probs, emb, 50, gen(5)).tolist()


# --------------------------------------------------------------------------- BADGE: seeding


def test_first_pick_is_the_largest_gradient_norm() -> None:
    probs, emb = random_inputs(4, 200, 10, 8)
    norms = torch.linalg.vector_norm(dense_gradient_embeddings(probs, emb), dim=1)
    for seed in range(3):
        assert int(badge_select(probs, emb, 5, gen(seed))[0]) == int(norms.argmax())


def test_d2_sampler_is_proportional_to_the_weights_and_never_draws_a_zero() -> None:
    weights = torch.tensor([0.0, 1.0, 2.0, 0.0, 5.0, 0.0], dtype=torch.float64)
    picked = weights == 0
    g = gen(0)
    counts = np.bincount([sample_proportional(weights, picked, g) for _ in range(4000)], minlength=6)
    assert counts[[0, 3, 5]].sum() == 0
    expected = 4000 * weights.numpy() / 8.0
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected + 1))


def test_d2_sampler_all_zero_weights_is_uniform_over_the_unpicked() -> None:
    weights = torch.zeros(6, dtype=torch.float64)
    picked = torch.tensor([True, False, True, False, False, True])
    g = gen(1)
    counts = np.bincount([sample_proportional(weights, picked, g) for _ in range(3000)], minlength=6)
    assert counts[[0, 2, 5]].sum() == 0
    assert np.all(np.abs(counts[[1, 3, 4]] - 1000) < 150)


def test_d2_sampler_never_draws_a_zero_weight_at_the_edges(monkeypatch: pytest.MonkeyPatch) -> None:
    weights = torch.tensor([0.0, 0.0, 1.0, 0.0, 2.0, 0.0], dtype=torch.float64)
    picked = weights == 0
    # u = 0: the target sits exactly on the leading zeros
    monkeypatch.setattr(badge_module, "_uniform", lambda generator: 0.0)
    assert sample_proportional(weights, picked, gen(0)) == 2
    # a parallel scan (GPU) may round so that the running sum grows at a zero weight
    monkeypatch.setattr(badge_module, "_uniform", lambda generator: 0.3)
    monkeypatch.setattr(badge_module.torch, "cumsum", lambda w, dim: torch.tensor(
        [0.0, 0.9, 1.0, 1.2, 3.0, 3.0], dtype=torch.float64))
    assert sample_proportional(weights, picked, gen(0)) == 2
    monkeypatch.setattr(badge_module, "_uniform", lambda generator: 1.0 - 2.0**-53)
    assert sample_proportional(weights, picked, gen(0)) == 4


def confident_and_uncertain(n_confident: int, n_uncertain: int, c: int = 5,
                            d: int = 6) -> tuple[torch.Tensor, torch.Tensor, set[int]]:
    probs_u, emb_u = random_inputs(21, n_uncertain, c, d)
    probs = torch.cat([one_hot_rows(n_confident, c, 22), probs_u])
    emb = torch.cat([torch.randn(n_confident, d, generator=gen(23), dtype=torch.float64), emb_u])
    perm = torch.randperm(len(probs), generator=gen(24))
    confident = set(torch.argsort(perm)[:n_confident].tolist())
    return probs[perm], emb[perm], confident


@pytest.mark.parametrize("seed", range(5))
def test_confident_samples_collapse_to_one_point_and_are_avoided(seed: int) -> None:
    # one-hot probabilities give a zero gradient: all confident samples are the same point (the
    # origin); once one is a centre, no other is picked while a sample with positive D remains
    probs, emb, confident = confident_and_uncertain(30, 10)
    for budget, expected_confident in ((5, None), (11, 1), (15, 5)):
        picked = badge_select(probs, emb, budget, gen(seed)).tolist()
        n_confident = len(set(picked) & confident)
        if expected_confident is None:
            assert n_confident <= 1
        else:
            assert n_confident == expected_confident
        assert len(set(picked)) == budget


def test_all_confident_pool_still_fills_the_budget() -> None:
    probs = one_hot_rows(20, 4, 0)
    emb = torch.randn(20, 3, generator=gen(1), dtype=torch.float64)
    picked = badge_select(probs, emb, 7, gen(2))
    assert len(set(picked.tolist())) == 7


def test_duplicate_gradients_are_not_picked_twice_while_others_remain() -> None:
    probs, emb = random_inputs(5, 10, 4, 3)
    probs, emb = torch.cat([probs, probs]), torch.cat([emb, emb])  # every point twice
    for seed in range(5):
        picked = badge_select(probs, emb, 10, gen(seed)).tolist()
        assert len({p % 10 for p in picked}) == 10


def test_badge_deterministic_for_a_seed_and_different_between_seeds() -> None:
    probs, emb = random_inputs(8, 300, 10, 8)
    a = badge_select(probs, emb, 40, gen(1)).tolist()
    assert badge_select(probs, emb, 40, gen(1)).tolist() == a
    assert badge_select(probs, emb, 40, gen(2)).tolist() != a
    assert len(set(a)) == 40


@pytest.mark.parametrize("budget", [0, 1, 29, 30, 31, 100])
def test_badge_select_sizes(budget: int) -> None:
    probs, emb = random_inputs(9, 30, 3, 4)
    picked = badge_select(probs, emb, budget, gen(0))
    assert picked.dtype == torch.int64
    assert sorted(picked.tolist()) == sorted(set(picked.tolist()))
    assert len(picked) == min(budget, 30)


def test_badge_rejects_misaligned_inputs() -> None:
    with pytest.raises(ValueError, match="same N"):
        badge_select(torch.rand(5, 3), torch.rand(4, 2), 2, gen(0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_badge_on_cuda_matches_cpu() -> None:
    probs, emb = random_inputs(3, 400, 10, 16)
    cuda = torch.device("cuda")
    on_gpu = badge_select(probs.to(cuda), emb.to(cuda), 50, torch.Generator(cuda).manual_seed(4))
    assert on_gpu.device.type == "cuda"
    assert len(set(on_gpu.tolist())) == 50
    picked = cluster_margin_select(probs.to(cuda), emb.to(cuda), 50, torch.Generator(cuda).manual_seed(4))
    assert len(set(picked.tolist())) == 50


# --------------------------------------------------------------------------- strategies through the registry


def pool_indices(n_pool: int, n_unlabeled: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    everything = np.random.default_rng(seed).permutation(n_pool)
    return everything[:n_unlabeled], everything[n_unlabeled:]


@pytest.mark.parametrize("name", ["badge", "cluster_margin"])
def test_registry_loads_the_classes(name: str) -> None:
    cls = STRATEGIES.get(name)
    assert issubclass(cls, Strategy)
    assert cls is {"badge": BADGE, "cluster_margin": ClusterMargin}[name]
    assert cls.name == name
    assert cls.needs == ("probs", "embeddings")
    assert tuple(STRATEGIES.entry(name).info.needs) == cls.needs


@pytest.mark.parametrize("name", ["badge", "cluster_margin"])
@pytest.mark.parametrize("budget", [1, 17, 150, 500])
@pytest.mark.parametrize("round_index", [0, 2])
def test_class_selections_are_valid(name: str, budget: int, round_index: int) -> None:
    unlabeled, labeled = pool_indices(1000, 150)
    if round_index == 0:
        labeled = labeled[:0]  # the initial selection: nothing labeled yet
    probs, emb = random_inputs(budget, 150, 10, 8, dtype=torch.float32)
    ctx = make_ctx(probs, emb, unlabeled, labeled, seed=3, round_index=round_index)
    picked = STRATEGIES.get(name)().select(ctx, budget)
    assert_valid(picked, unlabeled, labeled, budget)
    if budget >= len(unlabeled):
        assert sorted(picked.tolist()) == sorted(unlabeled.tolist())
    again = STRATEGIES.get(name)().select(make_ctx(probs, emb, unlabeled, labeled, seed=3), budget)
    assert again.tolist() == picked.tolist()


@pytest.mark.parametrize("name", ["badge", "cluster_margin"])
def test_class_maps_positions_to_pool_indices(name: str) -> None:
    unlabeled, labeled = pool_indices(500, 200, seed=4)
    probs, emb = random_inputs(6, 200, 10, 8, dtype=torch.float32)
    ctx = make_ctx(probs, emb, unlabeled, labeled, seed=9)
    picked = STRATEGIES.get(name)().select(ctx, 25)
    g = torch.Generator().manual_seed(int(np.random.default_rng(9).integers(2**62)))
    fn = badge_select if name == "badge" else cluster_margin_select
    assert picked.tolist() == unlabeled[fn(probs, emb, 25, g).numpy()].tolist()
    assert ctx.pool.calls == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["badge", "cluster_margin"])
def test_class_differs_between_seeds(name: str) -> None:
    unlabeled, labeled = pool_indices(600, 300, seed=5)
    probs, emb = random_inputs(12, 300, 10, 8, dtype=torch.float32)
    a = STRATEGIES.get(name)().select(make_ctx(probs, emb, unlabeled, labeled, seed=1), 20)
    b = STRATEGIES.get(name)().select(make_ctx(probs, emb, unlabeled, labeled, seed=2), 20)
    assert a.tolist() != b.tolist()


@pytest.mark.parametrize("name", ["badge", "cluster_margin"])
def test_class_needs_the_pool_model(name: str) -> None:
    ctx = SelectionContext(np.arange(5), np.arange(5, 8), np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="needs the network"):
        STRATEGIES.get(name)().select(ctx, 2)


@pytest.mark.parametrize("name", ["badge", "cluster_margin"])
def test_class_rejects_misaligned_outputs(name: str) -> None:
    probs, emb = random_inputs(0, 10, 3, 4)
    ctx = make_ctx(probs, emb, np.arange(12), np.arange(12, 20))
    with pytest.raises(RuntimeError, match="not aligned"):
        STRATEGIES.get(name)().select(ctx, 2)


# --------------------------------------------------------------------------- Cluster-Margin


def lowest_margin_set(probs: torch.Tensor, k_m: int) -> set[int]:
    return set(torch.argsort(margins(probs))[:k_m].tolist())


@pytest.mark.parametrize(("budget", "multiple", "max_hac"), [(10, 10, 5000), (25, 4, 5000), (20, 10, 150)])
def test_cluster_margin_picks_only_low_margin_candidates(budget: int, multiple: int, max_hac: int) -> None:
    probs, emb = random_inputs(13, 600, 10, 8, dtype=torch.float32)
    picked = cluster_margin_select(probs, emb, budget, gen(0), margin_multiple=multiple, max_hac_points=max_hac)
    assert len(set(picked.tolist())) == budget
    assert set(picked.tolist()) <= lowest_margin_set(probs, multiple * budget)


def test_margins_are_the_top2_gap() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2]])
    torch.testing.assert_close(margins(probs), torch.tensor([0.2, 0.7, 0.0]))


def separated_clusters(sizes: list[int], d: int = 5, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    g = gen(seed)
    centres = 100.0 * torch.randn(len(sizes), d, generator=g, dtype=torch.float64)
    truth = np.repeat(np.arange(len(sizes)), sizes)
    emb = centres[torch.as_tensor(truth)] + 0.1 * torch.randn(len(truth), d, generator=g, dtype=torch.float64)
    return emb, truth


def assert_round_robin(picked_clusters: np.ndarray, candidate_clusters: np.ndarray) -> None:
    """No cluster gets a (t+1)-th pick before every candidate cluster with > t candidates has t+1."""
    available = np.bincount(candidate_clusters)
    got = np.bincount(picked_clusters, minlength=len(available))
    top = got.max()
    for cluster, count in enumerate(available):
        assert got[cluster] >= min(count, top - 1), (got.tolist(), available.tolist())


@pytest.mark.parametrize("max_hac", [5000, 60])
@pytest.mark.parametrize(("budget", "seed"), [(8, 0), (13, 1), (30, 2)])
def test_cluster_margin_spreads_picks_over_well_separated_clusters(budget: int, seed: int, max_hac: int) -> None:
    emb, truth = separated_clusters([60, 45, 30, 80, 25, 50, 40, 70], seed=seed)
    probs, _ = random_inputs(seed, len(truth), 10, 2)
    multiple = 5
    picked = cluster_margin_select(probs, emb, budget, gen(seed), margin_multiple=multiple,
                                   max_hac_points=max_hac, n_clusters=8).numpy()
    candidates = np.array(sorted(lowest_margin_set(probs, multiple * budget)))
    assert set(picked.tolist()) <= set(candidates.tolist())
    assert len(set(picked.tolist())) == budget
    assert_round_robin(truth[picked], truth[candidates])
    # the passes are in order: the first picks are one per cluster
    m = len(set(truth[candidates].tolist()))
    assert len(set(truth[picked[:m]].tolist())) == min(m, budget)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_hac_is_average_linkage() -> None:
    from sklearn.cluster import AgglomerativeClustering

    emb = torch.randn(150, 4, generator=gen(8), dtype=torch.float64)
    labels = hac_labels(emb, np.arange(150), 12, gen(0))
    expected = AgglomerativeClustering(n_clusters=12, linkage="average").fit_predict(emb.numpy())
    assert len(set(labels.tolist())) == 12
    assert same_partition(labels, expected)
    single = AgglomerativeClustering(n_clusters=12, linkage="single").fit_predict(emb.numpy())
    assert not same_partition(labels, single)


def test_cluster_margin_visits_the_smallest_clusters_first() -> None:
    sizes = [40, 3, 25, 9, 60, 15]
    emb, truth = separated_clusters(sizes, seed=3)
    probs, _ = random_inputs(3, len(truth), 10, 2)
    for seed in range(3):
        # margin_multiple large enough that every sample is a candidate
        picked = cluster_margin_select(probs, emb, 3, gen(seed), margin_multiple=100, n_clusters=6).numpy()
        assert sorted(truth[picked].tolist()) == [1, 3, 5]  # sizes 3, 9 and 15


def test_round_robin_order_and_randomness_within_clusters() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 5])
    first = round_robin(labels, 10, gen(0))
    assert sorted(first.tolist()) == list(range(10))
    assert labels[first[0]] == 5  # the singleton cluster first
    passes = [labels[first[:4]], labels[first[4:7]], labels[first[7:9]], labels[first[9:]]]
    assert [sorted(p.tolist()) for p in passes] == [[0, 1, 2, 5], [0, 1, 2], [0, 2], [0]]
    assert labels[first[1]] == 1 and labels[first[4]] == 1  # size 2 before sizes 3 and 4
    orders = {tuple(round_robin(labels, 10, gen(s)).tolist()) for s in range(10)}
    assert len(orders) > 1


def test_cluster_margin_deterministic_and_seed_dependent() -> None:
    probs, emb = random_inputs(14, 800, 10, 8, dtype=torch.float32)
    a = cluster_margin_select(probs, emb, 30, gen(1), max_hac_points=200).tolist()
    assert cluster_margin_select(probs, emb, 30, gen(1), max_hac_points=200).tolist() == a
    assert cluster_margin_select(probs, emb, 30, gen(2), max_hac_points=200).tolist() != a


@pytest.mark.parametrize("budget", [0, 1, 39, 40, 41, 400])
def test_cluster_margin_sizes(budget: int) -> None:
    probs, emb = random_inputs(15, 40, 3, 4)
    picked = cluster_margin_select(probs, emb, budget, gen(0), max_hac_points=15)
    assert picked.dtype == torch.int64
    assert len(set(picked.tolist())) == len(picked) == min(budget, 40)


def test_cluster_margin_constructor_parameters_are_used() -> None:
    unlabeled, labeled = pool_indices(400, 300, seed=6)
    probs, emb = random_inputs(16, 300, 10, 8, dtype=torch.float32)
    picked = ClusterMargin(margin_multiple=2, max_hac_points=100).select(
        make_ctx(probs, emb, unlabeled, labeled, seed=2), 20)
    positions = {int(np.flatnonzero(unlabeled == p)[0]) for p in picked}
    assert positions <= lowest_margin_set(probs, 40)
    with pytest.raises(ValueError, match="positive"):
        cluster_margin_select(probs, emb, 5, gen(0), margin_multiple=0)
