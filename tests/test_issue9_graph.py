"""training.semi_graph (issue 9): label propagation's reciprocal (seed 004 l.120, l.192) or symmetric kNN graph."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from benchmark.config import TrainingConfig
from benchmark.data.base import ImageDataset
from benchmark.data.loading import load_dataset
from benchmark.models.base import build_backbone
from benchmark.training import semi
from benchmark.training.augment import Normalizer
from benchmark.training.loop import AugmentationSpec
from benchmark.training.trainer import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _dense_knn(x: torch.Tensor, k: int, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Brute force on the full n x n matrix: (A[i, j] = i has j among its k nearest, affinities)."""
    xn = torch.nn.functional.normalize(x.double(), dim=1)
    cos = xn @ xn.T
    cos.fill_diagonal_(-math.inf)
    k = min(k, x.shape[0] - 1)
    neighbours = cos.topk(k, dim=1).indices
    a = torch.zeros_like(cos, dtype=torch.bool).scatter_(1, neighbours, True)
    cos.fill_diagonal_(0.0)
    return a, cos.clamp(min=0).pow(gamma)


@pytest.mark.parametrize(("n", "k", "block_elements"), [(60, 7, 200), (25, 5, 1 << 20), (6, 50, 10)])
def test_reciprocal_graph_equals_dense_mutual_neighbours(n: int, k: int, block_elements: int) -> None:
    x = torch.randn(n, 6, generator=torch.Generator().manual_seed(n))
    a, s = _dense_knn(x, k, 3.0)
    expected = torch.where(a & a.T, s, 0.0)
    w = semi.knn_affinity(x, k, 3.0, block_elements=block_elements, reciprocal=True).to_dense()
    assert torch.allclose(w.double(), expected, atol=1e-6)
    assert torch.equal(w, w.T) and bool((w.diagonal() == 0).all())
    if n > k + 1:
        # not every kNN edge is mutual: the reciprocal graph is a strict subgraph of the union
        assert int((a & a.T).sum()) < int((a | a.T).sum())


@pytest.mark.parametrize(("n", "k", "block_elements"), [(60, 7, 200), (6, 50, 10)])
def test_symmetric_graph_equals_dense_w_plus_w_transposed(n: int, k: int, block_elements: int) -> None:
    x = torch.randn(n, 6, generator=torch.Generator().manual_seed(n + 1))
    a, s = _dense_knn(x, k, 3.0)
    w_dir = torch.where(a, s, 0.0)
    w = semi.knn_affinity(x, k, 3.0, block_elements=block_elements, reciprocal=False).to_dense()
    assert torch.allclose(w.double(), w_dir + w_dir.T, atol=1e-6)


def test_semi_graph_setting_is_validated() -> None:
    assert TrainingConfig().semi_graph == "reciprocal"  # seed 004 l.192
    with pytest.raises(ValueError, match="semi_graph"):
        TrainingConfig.model_validate({"semi_graph": "mutual"})


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> ImageDataset:
    return load_dataset("digits", tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("graph", ["reciprocal", "symmetric"])
def test_label_propagation_on_digits_with_each_graph(digits: ImageDataset, graph: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    build = semi.knn_affinity

    def recording(*args: Any, **kwargs: Any) -> torch.Tensor:
        seen.append(kwargs["reciprocal"])
        return build(*args, **kwargs)

    monkeypatch.setattr(semi, "knn_affinity", recording)
    torch.manual_seed(0)
    model = build_backbone("small_cnn", 10, 1)
    norm = Normalizer(digits.mean, digits.std, torch.device("cpu"))
    cfg = TrainingConfig.model_validate({"epochs": 2, "batch_size": 64, "semi": "label_propagation",
                                         "semi_graph": graph, "semi_warmup_epochs": 2,
                                         "optimizer": {"name": "sgd", "lr": 0.05}})
    labeled = torch.cat([torch.nonzero(digits.train_y == c).flatten()[:3] for c in range(10)])
    rest = torch.ones(len(digits.train_y), dtype=torch.bool)
    rest[labeled] = False
    before = [p.detach().clone() for p in model.parameters()]
    epochs: list[int] = []
    result = train(model, digits.train_x[labeled], digits.train_y[labeled], cfg, norm, AugmentationSpec(1, False),
                   torch.Generator().manual_seed(0), lambda e, n, loss: epochs.append(e),
                   pool_images=digits.train_x[rest])
    assert epochs == [1, 2, 3, 4] and math.isfinite(result.final_loss)
    assert seen == [graph == "reciprocal"] * 2  # one graph per LP + SEMI epoch, of the configured kind
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
