"""Every registered backbone gives logits and its penultimate embedding, forward and backward."""

from __future__ import annotations

import pytest
import torch

from benchmark.models import BACKBONES
from benchmark.models.base import build_backbone

INPUTS = {"small_cnn": (1, 8), "lenet": (1, 28)}  # every other backbone: 3 x 32 x 32


@pytest.mark.parametrize("name", BACKBONES.names())
def test_backbone_forward_backward_and_embedding(name: str) -> None:
    channels, size = INPUTS.get(name, (3, 32))
    torch.manual_seed(0)
    model = build_backbone(name, num_classes=7, in_channels=channels)
    x = torch.randn(4, channels, size, size)
    logits, embedding = model.forward_with_embedding(x)
    assert logits.shape == (4, 7)
    assert embedding.shape == (4, model.embedding_dim)
    model.eval()  # dropout layers (cnn13) would differ between two training-mode passes
    eval_logits, _ = model.forward_with_embedding(x)
    assert torch.allclose(model(x), eval_logits)
    model.train()
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_resnet18_cifar_has_a_3x3_stem_and_no_max_pool() -> None:
    model = build_backbone("resnet18_cifar", num_classes=10, in_channels=3)
    stem = model.stem[0]
    assert isinstance(stem, torch.nn.Conv2d) and stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(11.17e6, rel=0.01)
