"""Every registered backbone gives logits and its penultimate embedding, forward and backward."""

from __future__ import annotations

import functools

import pytest
import torch

from benchmark.models import BACKBONES
from benchmark.models.base import Backbone, build_backbone

INPUTS = {"small_cnn": (1, 8), "tiny_cnn": (1, 8), "lenet": (1, 28)}  # every other backbone: 3 x 32 x 32


@pytest.mark.parametrize("name", [e.name for e in BACKBONES if e.info.task == "classification"])
def test_backbone_forward_backward_and_embedding(name: str) -> None:
    """Every classification backbone (detectors: tests/test_detection.py)."""
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


@functools.cache
def _grey_transformer(name: str) -> Backbone:
    """One 1-channel model per transformer backbone, shared by the tests below (building them is slow)."""
    torch.manual_seed(0)
    return build_backbone(name, num_classes=3, in_channels=1)


@pytest.mark.parametrize(("name", "channels", "sizes"), [
    ("vit_small", [384] * 4, [8] * 4),  # 4x4 patches: an 8x8 token grid after every tapped block
    ("swin", [96, 192, 384, 768], [16, 8, 4, 2]),  # 2x2 patches, then three 2x2 patch merges
    ("dinov2_small", [384] * 4, [8] * 4),
])
def test_transformers_tap_feature_maps_and_run_down_to_their_minimum_image_size(
        name: str, channels: list[int], sizes: list[int]) -> None:
    from benchmark.training.aux import FeatureTaps, build_loss_prediction

    info = BACKBONES.entry(name).info
    assert info.has_dropout is False and info.imagenet is True
    model = _grey_transformer(name).train()
    x = torch.randn(2, 1, 32, 32)
    taps = FeatureTaps(model)
    with taps.active() as maps:
        model(x)
    assert [tuple(m.shape) for m in maps] == [(2, c, s, s) for c, s in zip(channels, sizes, strict=True)]
    module = build_loss_prediction(model, x)  # LL4AL's loss-prediction module reads these maps
    assert [branch.in_features for branch in module.branches] == channels
    model.eval()
    with torch.no_grad():
        for size in (info.min_image_size, 28):  # 28: the digit datasets
            assert model(torch.randn(2, 1, size, size)).shape == (2, 3)


def test_vit_small_is_vit_s_with_4x4_patches_and_embeds_the_class_token() -> None:
    model = _grey_transformer("vit_small").eval()
    net = model.net
    assert (net.embed_dim, len(net.blocks), net.blocks[0].attn.num_heads) == (384, 12, 6)
    assert net.patch_embed.proj.kernel_size == (4, 4) and net.pos_embed.shape == (1, 1 + 64, 384)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        tokens = net.forward_features(x)  # final norm applied
        assert torch.allclose(model.features(x), tokens[:, 0], atol=1e-6)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(21.33e6, rel=0.01)


def test_swin_uses_2x2_patches_4x4_windows_and_no_stochastic_depth() -> None:
    model = _grey_transformer("swin").train()
    net = model.net
    assert net.patch_embed.proj.kernel_size == (2, 2)
    windows = [tuple(block.window_size) for stage in net.layers for block in stage.blocks]
    assert windows == [(4, 4)] * 10 + [(2, 2)] * 2  # the 2x2 last stage clamps its window
    assert model.embedding_dim == 768
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))  # train mode, yet deterministic: drop path is off


def test_dinov2_small_upsamples_to_112_px_for_14x14_patches_and_embeds_the_normed_cls_token() -> None:
    model = _grey_transformer("dinov2_small").eval()
    config = model.net.config
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.patch_size) == \
        (384, 12, 6, 14)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        upsampled = torch.nn.functional.interpolate(x, size=(112, 112), mode="bilinear", align_corners=False)
        out = model.net(pixel_values=upsampled, output_hidden_states=True)
        assert out.last_hidden_state.shape == (2, 1 + 64, 384)  # as many tokens as ViT-S/4 at 32 px
        cls = model.net.layernorm(out.hidden_states[-1])[:, 0]  # the last layer's output, then the final norm
        assert torch.allclose(model.features(x), cls, atol=1e-6)
