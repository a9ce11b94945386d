"""Joint label propagation (jLP, seed 004): greedy acquisition, strategy class (graph and CG: test_ops_graph)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_valid_selection as assert_valid
from test_ops_graph import dense_graph, dense_normalized

from benchmark.ops.graph import knn_graph
from benchmark.strategies.base import SelectionContext
from benchmark.strategies.jlp import JointLabelPropagation, jlp_select

pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- acquisition


def two_blobs(seed: int, n_a: int = 100, n_b: int = 60, dim: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Blob A around 10 e_0, blob B around 10 e_1 (orthogonal: no k-NN edge between them)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n_a, dim)) + 10 * np.eye(dim)[0]
    b = rng.normal(size=(n_b, dim)) + 10 * np.eye(dim)[1]
    return a.astype(np.float32), b.astype(np.float32)


@pytest.mark.parametrize("reciprocal", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_first_picks_are_least_manifold_similar(seed: int, reciprocal: bool) -> None:
    a, b = two_blobs(seed)
    labeled, unlabeled_a = a[:20], a[20:]
    unlabeled = np.concatenate([unlabeled_a, b])  # positions >= 80 are blob B
    # no isolated node (a node without edges keeps h = 0 and would be as dissimilar as blob B)
    w = knn_graph(torch.from_numpy(np.concatenate([unlabeled, labeled])), k=10, reciprocal=reciprocal).to_dense()
    assert (w > 0).any(dim=1).all() and not (w[:80, 80:140] > 0).any()
    picks = jlp_select(torch.from_numpy(unlabeled), torch.from_numpy(labeled), 5, gen(seed), k=10,
                       reciprocal=reciprocal).tolist()
    assert all(p >= len(unlabeled_a) for p in picks), picks
    # with blob B labeled instead, the picks move to blob A
    picks = jlp_select(torch.from_numpy(unlabeled), torch.from_numpy(b[:20]), 5, gen(seed), k=10,
                       reciprocal=reciprocal).tolist()
    assert all(p < len(unlabeled_a) for p in picks), picks


def chain_with_twins(n: int = 30, seed: int = 0) -> np.ndarray:
    """Points along a quarter circle (plus a little noise), the last two nearly identical."""
    rng = np.random.default_rng(seed)
    theta = np.linspace(0.0, np.pi / 2, n)
    x = np.stack([np.cos(theta), np.sin(theta), np.zeros(n)], axis=1)
    x[-1] = x[-2]
    x += rng.normal(size=x.shape) * 1e-4
    return x.astype(np.float32)


def test_greedy_update_skips_the_near_duplicate_of_a_pick() -> None:
    x = chain_with_twins()
    labeled, unlabeled = x[:3], x[3:]  # the labeled end of the chain; the twins are the last two rows
    twins = {len(unlabeled) - 2, len(unlabeled) - 1}
    # without updates the twins are the two least similar points: a batch of the lowest h takes both
    w = dense_normalized(dense_graph(np.concatenate([unlabeled, labeled]), 4))
    y = np.zeros(len(x))
    y[len(unlabeled):] = 1.0
    h = np.linalg.solve(np.eye(len(x)) - 0.99 * w, y)[:len(unlabeled)]
    assert set(np.argsort(h)[:2].tolist()) == twins
    for seed in range(3):
        picks = jlp_select(torch.from_numpy(unlabeled), torch.from_numpy(labeled), 2, gen(seed), k=4,
                           cg_iterations=200, tol=1e-9).tolist()
        assert picks[0] in twins and picks[1] not in twins, picks


@pytest.mark.parametrize(("seed", "n_labeled"), [(0, 5), (1, 5), (2, 12), (3, 0)])
def test_each_pick_minimises_the_exact_similarity_to_labeled_and_picked(seed: int, n_labeled: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    unlabeled, labeled = x[n_labeled:], x[:n_labeled]
    n = len(unlabeled)
    picks = jlp_select(torch.from_numpy(unlabeled), torch.from_numpy(labeled), 12, gen(seed), k=8,
                       cg_iterations=150, tol=1e-7).tolist()
    a = np.eye(len(x)) - 0.99 * dense_normalized(dense_graph(np.concatenate([unlabeled, labeled]), 8))
    y = np.zeros(len(x))
    y[n:] = 1.0
    for t, p in enumerate(picks):
        h = np.linalg.solve(a, y)[:n]
        h[picks[:t]] = np.inf
        assert h[p] <= h.min() + 1e-5 * max(1.0, np.abs(h[np.isfinite(h)]).max()), (t, p)
        y[p] = 1.0


# --------------------------------------------------------------------------- the strategy class


class FakePool:
    """What jLP uses of a PoolModel: embeddings of the unlabeled and labeled pool."""

    def __init__(self, embeddings: np.ndarray, unlabeled: np.ndarray, labeled: np.ndarray) -> None:
        self.emb = torch.from_numpy(embeddings)
        self.unlabeled, self.labeled = unlabeled, labeled

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def _outputs(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(np.asarray(index, dtype=np.int64))
        return torch.full((len(idx), 4), 0.25), self.emb[idx]

    def unlabeled_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._outputs(self.unlabeled)

    def labeled_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._outputs(self.labeled)


POOL = np.random.default_rng(7).normal(size=(300, 8)).astype(np.float32)


def select(unlabeled: np.ndarray, labeled: np.ndarray, budget: int, seed: int = 0, **params: object) -> np.ndarray:
    ctx = SelectionContext(unlabeled, labeled, np.random.default_rng(seed), round_index=int(len(labeled) > 0),
                           pool=FakePool(POOL, unlabeled, labeled))  # type: ignore[arg-type]
    return JointLabelPropagation(**params).select(ctx, budget)  # type: ignore[arg-type]


def split(n_unlabeled: int, n_labeled: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(3).permutation(len(POOL))
    return order[:n_unlabeled], order[n_unlabeled:n_unlabeled + n_labeled]




def test_class_attributes() -> None:
    assert JointLabelPropagation.name == "jlp"
    assert JointLabelPropagation.needs == ("embeddings",)
    s = JointLabelPropagation(k=10, gamma=2.0, alpha=0.9, cg_iterations=5)
    assert (s.k, s.gamma, s.alpha, s.cg_iterations) == (10, 2.0, 0.9, 5)


@pytest.mark.parametrize("budget", [1, 9, 60])
def test_selection_is_valid_and_deterministic(budget: int) -> None:
    unlabeled, labeled = split(200, 30)
    picked = select(unlabeled, labeled, budget, seed=5)
    assert_valid(picked, unlabeled, labeled, budget)
    assert select(unlabeled, labeled, budget, seed=5).tolist() == picked.tolist()


def test_round_zero_with_an_empty_labeled_set() -> None:
    unlabeled, _ = split(250, 0)
    labeled = np.empty(0, dtype=np.int64)
    picked = select(unlabeled, labeled, 20, seed=1)
    assert_valid(picked, unlabeled, labeled, 20)
    assert select(unlabeled, labeled, 20, seed=1).tolist() == picked.tolist()
    # no queries at first: the first pick is a seeded random one
    firsts = {int(select(unlabeled, labeled, 1, seed=s)[0]) for s in range(6)}
    assert len(firsts) > 1


@pytest.mark.parametrize("extra", [0, 1, 50])
def test_budget_at_least_the_pool_takes_the_whole_pool(extra: int) -> None:
    unlabeled, labeled = split(25, 10)
    picked = select(unlabeled, labeled, len(unlabeled) + extra)
    assert sorted(picked.tolist()) == sorted(unlabeled.tolist())


def test_tiny_pools_and_duplicates() -> None:
    unlabeled, labeled = split(3, 0)
    assert_valid(select(unlabeled, labeled, 2), unlabeled, labeled, 2)
    unlabeled, labeled = split(2, 1)
    assert_valid(select(unlabeled, labeled, 1), unlabeled, labeled, 1)
    emb = np.zeros((40, 4), dtype=np.float32)
    emb[::2] = 1.0
    emb[1::2, 0] = 1.0  # two distinct directions, many exact duplicates
    ctx = SelectionContext(np.arange(30), np.arange(30, 40), np.random.default_rng(0),
                           pool=FakePool(emb, np.arange(30), np.arange(30, 40)))  # type: ignore[arg-type]
    assert_valid(JointLabelPropagation(k=5).select(ctx, 12), np.arange(30), np.arange(30, 40), 12)


def test_zero_budget_and_missing_pool() -> None:
    unlabeled, labeled = split(30, 5)
    assert select(unlabeled, labeled, 0).tolist() == []
    ctx = SelectionContext(unlabeled, labeled, np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="needs the network"):
        JointLabelPropagation().select(ctx, 3)
