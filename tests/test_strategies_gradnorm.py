"""Ent-GradNorm: per-sample entropy-gradient norms equal an explicit backward pass per sample."""

from __future__ import annotations

import numpy as np
import torch

from benchmark.models.base import build_backbone
from benchmark.strategies.base import SelectionContext
from benchmark.strategies.gradnorm import EntropyGradNorm, entropy_gradient_norms
from benchmark.strategies.pool_model import PoolModel


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_backbone("small_cnn", 10, 1)
    model.train()
    with torch.no_grad():  # non-trivial batch-norm statistics, used in eval mode
        model(torch.randn(64, 1, 8, 8) * 2 + 0.5)
    return model.eval()


def test_vectorised_norms_equal_one_backward_pass_per_sample() -> None:
    model = _model()
    x = torch.randn(7, 1, 8, 8)
    expected = []
    for xi in x:
        model.zero_grad()
        log_p = torch.log_softmax(model(xi[None]), dim=1)
        (-(log_p.exp() * log_p).sum()).backward()
        expected.append(torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters())))
    got = entropy_gradient_norms(model, x, chunk_size=3)
    assert torch.allclose(got, torch.stack(expected), rtol=1e-4, atol=1e-6)
    assert not torch.allclose(got, got[0].expand_as(got))  # samples really differ
    assert torch.allclose(entropy_gradient_norms(model, x, chunk_size=1), got, rtol=1e-5)


def test_selection_picks_the_largest_norms_and_leaves_the_model_unchanged() -> None:
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randint(0, 255, (40, 1, 8, 8), dtype=torch.uint8)

    def normalize(batch: torch.Tensor) -> torch.Tensor:
        return batch.float() / 255.0

    unlabeled = np.arange(5, 40)
    pool = PoolModel(model, images, torch.zeros(40, dtype=torch.int64), normalize,
                     torch.as_tensor(unlabeled), torch.arange(5), seed=0)
    ctx = SelectionContext(unlabeled, np.arange(5), np.random.default_rng(0), pool=pool)
    picked = EntropyGradNorm().select(ctx, 6)
    norms = entropy_gradient_norms(model, normalize(images[5:])).numpy()
    assert sorted(picked.tolist()) == sorted((unlabeled[np.argsort(-norms, kind="stable")[:6]]).tolist())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
