"""benchmark.ops.graph against references: the kNN graph against a dense brute force, the normalisation
against its dense formula, conjugate gradient against scipy's CG and a dense solve."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg
import torch

from benchmark.ops.graph import conjugate_gradient, knn_graph, normalize_graph, propagate

pytestmark = pytest.mark.usefixtures("one_thread")


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def dense_graph(x: np.ndarray, k: int, gamma: float = 3.0, reciprocal: bool = True) -> np.ndarray:
    """Brute-force affinity matrix: k-NN by cosine (self excluded), reciprocal pairs or union W + W^T."""
    xn = unit(x.astype(np.float64))
    cos = xn @ xn.T
    np.fill_diagonal(cos, -np.inf)
    knn = np.zeros_like(cos, dtype=bool)
    nearest = np.argsort(-cos, axis=1, kind="stable")[:, :k]
    knn[np.arange(len(x))[:, None], nearest] = True
    weight = np.where(np.isfinite(cos), np.clip(cos, 0.0, None), 0.0) ** gamma
    if reciprocal:
        return np.where(knn & knn.T, weight, 0.0)
    return np.where(knn, weight, 0.0) + np.where(knn.T, weight, 0.0)


def dense_normalized(w: np.ndarray) -> np.ndarray:
    d = w.sum(axis=1)
    s = np.where(d > 0, 1.0 / np.sqrt(np.where(d > 0, d, 1.0)), 0.0)
    return s[:, None] * w * s[None, :]


def scipy_cg(a: np.ndarray, b: np.ndarray, iterations: int, tol: float) -> np.ndarray:
    """scipy's CG in float64 (relative tolerance, at most ``iterations`` steps from zero)."""
    x, _ = scipy.sparse.linalg.cg(a, b, rtol=tol, atol=0.0, maxiter=iterations)
    return x


# --------------------------------------------------------------------------- graph


@pytest.mark.parametrize("reciprocal", [True, False])
@pytest.mark.parametrize("block_elements", [1 << 24, 150])  # one block; blocks of 2 rows
def test_graph_equals_brute_force(reciprocal: bool, block_elements: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 6)).astype(np.float32) * rng.uniform(0.5, 3.0, size=(70, 1)).astype(np.float32)
    w = knn_graph(torch.from_numpy(x), k=7, gamma=3.0, reciprocal=reciprocal, block_elements=block_elements)
    assert w.layout == torch.sparse_csr
    dense = w.to_dense().numpy()
    assert np.array_equal(dense, dense.T), "not exactly symmetric"
    assert np.all(np.diag(dense) == 0)
    expected = dense_graph(x, 7, 3.0, reciprocal)
    assert np.array_equal(dense > 0, expected > 0)
    np.testing.assert_allclose(dense, expected, rtol=1e-5, atol=1e-6)
    if reciprocal:  # an edge (i, j) only when each is among the other's 7 nearest neighbours
        assert (dense > 0).sum(axis=1).max() <= 7
        assert (dense > 0).sum() < (dense_graph(x, 7, 3.0, reciprocal=False) > 0).sum()


def test_graph_weights_are_cubed_cosines_and_small_pools_shrink_k() -> None:
    x = torch.tensor([[1.0, 0.0], [2.0, 2.0], [0.0, 3.0]])  # cosines 1/sqrt(2) to the middle, 0 across
    dense = knn_graph(x, k=50).to_dense().numpy()
    c = 2 ** -0.5
    expected = np.array([[0, c**3, 0], [c**3, 0, c**3], [0, c**3, 0]])
    np.testing.assert_allclose(dense, expected, rtol=1e-6)  # k = 50 > n - 1: every point's 2 neighbours
    assert knn_graph(torch.ones(1, 4)).to_dense().tolist() == [[0.0]]
    with pytest.raises(ValueError, match="positive"):
        knn_graph(x, k=0)


@pytest.mark.parametrize("layout", ["csr", "coo"])
def test_normalisation_is_symmetric_degree_scaling(layout: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 4)).astype(np.float32)
    w = knn_graph(torch.from_numpy(x), k=5)
    if layout == "coo":
        w = w.to_sparse_coo()
    w_n = normalize_graph(w)
    assert w_n.layout == w.layout
    np.testing.assert_allclose(w_n.to_dense().numpy(), dense_normalized(w.to_dense().numpy()), rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- conjugate gradient


def _system(alpha: float) -> tuple[torch.Tensor, np.ndarray]:
    x = np.random.default_rng(2).normal(size=(60, 5)).astype(np.float32)
    w_norm = normalize_graph(knn_graph(torch.from_numpy(x), k=8))
    return w_norm, np.eye(60) - alpha * w_norm.to_dense().numpy().astype(np.float64)


@pytest.mark.parametrize("alpha", [0.5, 0.99])
def test_cg_equals_scipy_and_the_dense_solve(alpha: float) -> None:
    w_norm, a = _system(alpha)
    y = np.zeros(60)
    y[[3, 17, 40]] = 1.0
    exact = np.linalg.solve(a, y)
    scale = np.abs(exact).max()
    h = propagate(w_norm, torch.from_numpy(y).float(), alpha, iterations=300, tol=1e-7).numpy()
    np.testing.assert_allclose(h, exact, rtol=1e-4, atol=1e-5 * scale)
    # the default: Iscen et al.'s 20 CG steps, the truncated solution as scipy's CG gives it
    h20 = propagate(w_norm, torch.from_numpy(y).float(), alpha).numpy()
    np.testing.assert_allclose(h20, scipy_cg(a, y, 20, 1e-6), rtol=1e-4, atol=1e-5 * scale)
    warm = propagate(w_norm, torch.from_numpy(y).float(), alpha, iterations=300, tol=1e-7,
                     x0=torch.from_numpy(h20).float()).numpy()
    np.testing.assert_allclose(warm, exact, rtol=1e-4, atol=1e-5 * scale)
    assert propagate(w_norm, torch.zeros(60), alpha).abs().max() == 0


def test_cg_solves_several_right_hand_sides_each_as_alone() -> None:
    alpha = 0.9
    w_norm, a = _system(alpha)
    b = np.zeros((60, 4))
    b[[0, 5, 9], 0] = 1.0
    b[[20, 33], 1] = 1.0
    b[:, 2] = np.random.default_rng(3).normal(size=60)  # column 3 stays 0: a class without labels
    for iterations, tol in ((8, 1e-6), (300, 1e-8)):
        z = propagate(w_norm, torch.from_numpy(b).float(), alpha, iterations, tol).double().numpy()
        for c in range(3):  # each column runs its own recursion: scipy's CG on that column alone
            np.testing.assert_allclose(z[:, c], scipy_cg(a, b[:, c], iterations, tol), rtol=1e-4, atol=1e-5)
        assert (z[:, 3] == 0).all()
    np.testing.assert_allclose(z, np.linalg.solve(a, b), rtol=1e-4, atol=1e-5)


def test_cg_stops_at_the_relative_tolerance() -> None:
    calls: list[int] = []
    diag = torch.linspace(1.0, 2.0, 30, dtype=torch.float64)

    def matmul(v: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return diag.unsqueeze(1) * v if v.ndim == 2 else diag * v

    b = torch.ones(30, dtype=torch.float64)
    x = conjugate_gradient(matmul, b, iterations=100, tol=1e-10)
    torch.testing.assert_close(x, 1.0 / diag)
    assert len(calls) < 31  # CG on 30 distinct eigenvalues converges in at most 30 steps
    with pytest.raises(ValueError, match="alpha"):
        propagate(torch.eye(3).to_sparse_csr(), b[:3], alpha=1.0)
