"""The papers' CIFAR backbones (benchmark.models.cifar_nets): shapes, gradients, tap points, sizes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from benchmark.models import cifar_nets
from benchmark.models.base import Backbone
from benchmark.training.aux import build_loss_prediction

# name -> (in_channels, input size, embedding_dim)
SPECS: dict[str, tuple[int, int, int]] = {
    "resnet34_cifar": (3, 32, 512),
    "resnet56_cifar": (3, 32, 64),
    "vgg16_cifar": (3, 32, 512),
    "wideresnet28_2": (3, 32, 128),
    "mobilenetv2": (3, 32, 1280),
    "densenet121": (3, 32, 1024),
    "densenet201": (3, 32, 1920),
    "cnn13": (3, 32, 128),
    "lenet": (1, 28, 84),
}

# parameter counts with a 10-class head, from the reference implementations / papers
KNOWN_PARAMS = {
    "resnet34_cifar": 21.28e6,
    "resnet56_cifar": 0.85e6,  # He et al. 2016, table 6 (option A)
    "vgg16_cifar": 14.73e6,
    "wideresnet28_2": 1.47e6,
    "mobilenetv2": 2.24e6,
    "densenet121": 6.96e6,
    "cnn13": 3.1e6,
    "lenet": 61_706,
}


def _factory(name: str) -> Callable[..., Backbone]:
    return getattr(cifar_nets, name)


@pytest.mark.parametrize("name", list(SPECS))
def test_forward_backward_embedding_and_taps(name: str) -> None:
    channels, size, embedding_dim = SPECS[name]
    torch.manual_seed(0)
    model = _factory(name)(num_classes=7, in_channels=channels)
    assert isinstance(model, Backbone)
    assert model.embedding_dim == embedding_dim
    assert isinstance(model.head, nn.Linear) and model.head.in_features == embedding_dim
    x = torch.randn(2, channels, size, size)

    taps = model.tap_points()
    assert len(taps) >= 2
    seen: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    handles = [tap.register_forward_hook(lambda _m, _i, out, k=k: seen.append((k, out, out.detach().clone())))
               for k, tap in enumerate(taps)]
    torch.manual_seed(1)
    logits, embedding = model.forward_with_embedding(x)
    for handle in handles:
        handle.remove()

    assert logits.shape == (2, 7)
    assert embedding.shape == (2, embedding_dim)
    # each tap fires once per forward, in shallow-to-deep order, with 4-d maps never modified in place later
    assert [k for k, _, _ in seen] == list(range(len(taps)))
    sizes = []
    for _, out, copy in seen:
        assert out.dim() == 4 and out.shape[0] == 2
        assert torch.equal(out.detach(), copy)
        sizes.append(out.shape[-1])
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[-1] < size

    torch.manual_seed(1)  # cnn13's dropout: the same masks
    assert torch.allclose(model(x), logits, atol=1e-6)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())

    model.eval()
    with torch.no_grad():
        logits_eval, _ = model.forward_with_embedding(x)
        assert torch.allclose(model(x), logits_eval, atol=1e-6)
        # LL4AL's loss-prediction module sizes itself from the taps and runs on them
        lpm = build_loss_prediction(model, x)
        assert len(lpm.branches) == len(taps)


@pytest.mark.parametrize("name", list(KNOWN_PARAMS))
def test_parameter_counts_match_the_reference_sizes(name: str) -> None:
    channels = SPECS[name][0]
    model = _factory(name)(num_classes=10, in_channels=channels)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(KNOWN_PARAMS[name], rel=0.05)


@pytest.mark.parametrize("name", [n for n in SPECS if n != "lenet"])
def test_cifar_stems_are_3x3_stride_1_without_max_pool(name: str) -> None:
    model = _factory(name)(num_classes=10, in_channels=3)
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.kernel_size == (3, 3) and first_conv.stride == (1, 1)
    assert first_conv.in_channels == 3


def test_resnet56_has_56_layers_and_option_a_shortcuts() -> None:
    model = cifar_nets.resnet56_cifar(num_classes=10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 55 and all(c.kernel_size == (3, 3) for c in convs)  # 55 conv + 1 linear
    assert [m.out_channels for m in convs if m.stride == (2, 2)] == [32, 64]


def test_densenet_widths_and_in_channels() -> None:
    assert cifar_nets.densenet121(10).embedding_dim == 1024
    assert cifar_nets.densenet201(10).embedding_dim == 1920
    gray = cifar_nets.wideresnet28_2(num_classes=3, in_channels=1)
    assert gray(torch.randn(2, 1, 32, 32)).shape == (2, 3)


def test_lenet_is_lenet5_and_takes_larger_inputs() -> None:
    model = cifar_nets.lenet(num_classes=10, in_channels=1)
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert [(type(m).__name__, getattr(m, "out_channels", getattr(m, "out_features", None))) for m in layers] == [
        ("Conv2d", 6), ("Conv2d", 16), ("Linear", 120), ("Linear", 84), ("Linear", 10)]
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_wideresnet_dropout_and_depth_validation() -> None:
    model = cifar_nets.WideResNet(28, 2, num_classes=10, dropout=0.3)
    assert any(isinstance(m, nn.Dropout) for m in model.modules())
    assert not any(isinstance(m, nn.Dropout) for m in cifar_nets.wideresnet28_2(10).modules())
    with pytest.raises(ValueError):
        cifar_nets.WideResNet(27, 2, num_classes=10)
