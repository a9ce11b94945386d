"""init: imagenet copies pre-trained weights into a fresh backbone (all but its head), from a local file first.

There is no internet in the tests: the "pre-trained" files are state dicts of randomly initialised source
models (torchvision, timm, transformers) written where the loader looks for them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file
from timm.layers import resample_patch_embed
from torch import nn
from transformers import Dinov2Config, Dinov2Model

from benchmark.errors import AlbError, ConfigError
from benchmark.models import BACKBONES, imagenet
from benchmark.models.base import Backbone, build_backbone
from benchmark.models.imagenet import (
    WeightsMismatchError,
    WeightsUnavailableError,
    load_imagenet_weights,
    map_torchvision_resnet,
)
from benchmark.models.transformer_nets import DINOV2_SMALL
from benchmark.pretrain.checkpoint import backbone_state
from benchmark.pretrain.initial import apply_backbone_state


def _fresh(name: str, in_channels: int = 3) -> tuple[Backbone, dict[str, torch.Tensor]]:
    torch.manual_seed(1)
    model = build_backbone(name, num_classes=5, in_channels=in_channels)
    return model, {k: v.clone() for k, v in model.head.state_dict().items()}


def _assert_head_untouched(model: Backbone, head: dict[str, torch.Tensor]) -> None:
    assert all(torch.equal(model.head.state_dict()[k], v) for k, v in head.items())


def test_registry_marks_exactly_the_backbones_the_loader_supports() -> None:
    flagged = sorted(e.name for e in BACKBONES if e.info.imagenet and e.info.task == "classification")
    assert flagged == imagenet.supported_backbones()
    assert flagged == ["dinov2_small", "resnet18_cifar", "resnet34_cifar", "swin", "vit_small"]
    # detectors load their backbone's weights themselves (benchmark.detection.models)
    assert sorted(e.name for e in BACKBONES if e.info.imagenet and e.info.task == "detection") == ["ssd300_vgg16"]


def test_a_backbone_without_weights_is_a_config_error(tmp_path: Path) -> None:
    model, _ = _fresh("small_cnn")
    with pytest.raises(ConfigError, match=r"no ImageNet weights for backbone 'small_cnn'.*resnet18_cifar"):
        load_imagenet_weights(model, "small_cnn", tmp_path)


# --------------------------------------------------------------------------- ResNets

def test_resnet18_copies_every_torchvision_tensor_and_crops_the_stem(tmp_path: Path) -> None:
    source = torchvision.models.resnet18().state_dict()
    torch.save(source, tmp_path / "resnet18_cifar-imagenet.pth")
    model, head = _fresh("resnet18_cifar")
    fresh_stem_bn = {k: v.clone() for k, v in model.stem[1].state_dict().items()}
    load_imagenet_weights(model, "resnet18_cifar", tmp_path)
    ours = model.state_dict()
    # flat stage index of torchvision's layerI.J: two blocks per stage in ResNet-18
    for key, value in source.items():
        if key.startswith("layer"):
            stage, block, rest = key.split(".", 2)
            flat = 2 * (int(stage[5:]) - 1) + int(block)
            assert torch.equal(ours[f"stages.{flat}.{rest.replace('downsample', 'shortcut')}"], value), key
    assert torch.equal(ours["stem.0.weight"], source["conv1.weight"][:, :, 2:5, 2:5])
    assert torch.equal(ours["stem.1.weight"], source["bn1.weight"])
    assert torch.equal(ours["stem.1.running_var"], fresh_stem_bn["running_var"])  # not the 7x7 conv's statistics
    _assert_head_untouched(model, head)


def test_resnet34_mapping_covers_every_tensor_but_the_head_with_matching_shapes() -> None:
    source = torchvision.models.resnet34().state_dict()
    model, _ = _fresh("resnet34_cifar")
    mapped = map_torchvision_resnet(source, model)  # raises on a missing key or a shape mismatch
    first_block = {1: 0, 2: 3, 3: 7, 4: 13}  # flat index of each stage's first block: [3, 4, 6, 3] blocks
    expected: dict[str, str] = {"stem.1.weight": "bn1.weight", "stem.1.bias": "bn1.bias"}
    for key in source:
        if key.startswith("layer"):
            stage, block, rest = key.split(".", 2)
            flat = first_block[int(stage[5:])] + int(block)
            expected[f"stages.{flat}.{rest.replace('downsample', 'shortcut')}"] = key
    own = {"head.weight", "head.bias", "stem.0.weight", "stem.1.running_mean", "stem.1.running_var",
           "stem.1.num_batches_tracked"}  # the head, the cropped stem conv, the stem statistics
    assert set(mapped) == set(expected) | own
    assert all(torch.equal(mapped[ours], source[theirs]) for ours, theirs in expected.items())
    unused = set(source) - set(expected.values())
    assert unused == {"conv1.weight", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
                      "fc.weight", "fc.bias"}


def test_resnet_stem_of_grayscale_inputs_sums_the_rgb_kernels(tmp_path: Path) -> None:
    source = torchvision.models.resnet18().state_dict()
    save_file(source, str(tmp_path / "resnet18_cifar-imagenet.safetensors"))
    model, _ = _fresh("resnet18_cifar", in_channels=1)
    load_imagenet_weights(model, "resnet18_cifar", tmp_path)
    expected = source["conv1.weight"][:, :, 2:5, 2:5].sum(dim=1, keepdim=True)
    assert torch.allclose(model.state_dict()["stem.0.weight"], expected)


def test_weights_of_another_depth_are_rejected_with_the_file_named(tmp_path: Path) -> None:
    path = tmp_path / "resnet18_cifar-imagenet.pth"
    torch.save(torchvision.models.resnet34().state_dict(), path)
    model, _ = _fresh("resnet18_cifar")
    with pytest.raises(WeightsMismatchError, match=r"resnet18_cifar-imagenet\.pth.*16 residual blocks.*8"):
        load_imagenet_weights(model, "resnet18_cifar", tmp_path)


# --------------------------------------------------------------------------- timm ViT / Swin

def test_vit_small_loads_timm_weights_resampled_to_4x4_patches(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = timm.create_model("vit_small_patch16_224").state_dict()
    save_file(source, str(tmp_path / "vit_small-imagenet.safetensors"))
    model, head = _fresh("vit_small")
    load_imagenet_weights(model, "vit_small", tmp_path)
    ours = model.net.state_dict()
    for key in ("cls_token", "blocks.0.attn.qkv.weight", "blocks.11.mlp.fc2.bias", "norm.weight"):
        assert torch.equal(ours[key], source[key]), key
    assert all(torch.equal(ours[k], source[k]) for k in ours if k.startswith("blocks."))
    assert torch.allclose(ours["patch_embed.proj.weight"],
                          resample_patch_embed(source["patch_embed.proj.weight"], [4, 4], antialias=True))
    assert ours["pos_embed"].shape == (1, 1 + 64, 384)
    assert torch.equal(ours["pos_embed"][:, 0], source["pos_embed"][:, 0])  # the class token's is kept
    _assert_head_untouched(model, head)


def test_swin_loads_timm_weights_resampled_to_its_windows(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = timm.create_model("swin_tiny_patch4_window7_224").state_dict()
    torch.save(source, tmp_path / "swin-imagenet.pth")
    model, head = _fresh("swin")
    load_imagenet_weights(model, "swin", tmp_path)
    ours = model.net.state_dict()
    for key in ("layers.2.blocks.5.mlp.fc1.weight", "layers.3.downsample.reduction.weight", "norm.bias"):
        assert torch.equal(ours[key], source[key]), key
    table = "layers.0.blocks.0.attn.relative_position_bias_table"
    assert source[table].shape == (13 * 13, 3) and ours[table].shape == (7 * 7, 3)  # window 7 -> 4
    assert ours["patch_embed.proj.weight"].shape == (96, 3, 2, 2)
    _assert_head_untouched(model, head)


def test_a_local_file_of_the_wrong_model_names_the_file(tmp_path: Path) -> None:
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "vit_small-imagenet.pth")
    model, _ = _fresh("vit_small")
    with pytest.raises(WeightsMismatchError, match=r"vit_small-imagenet\.pth does not hold weights of timm's "
                                                   "vit_small_patch16_224"):
        load_imagenet_weights(model, "vit_small", tmp_path)


# --------------------------------------------------------------------------- DINOv2

def test_dinov2_keeps_14x14_patches_and_matches_the_original_model_at_112_px(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = Dinov2Model(Dinov2Config(**DINOV2_SMALL, image_size=518, patch_size=14))  # facebook/dinov2-small
    source.save_pretrained(tmp_path / "dinov2_small-imagenet")
    model, head = _fresh("dinov2_small")
    load_imagenet_weights(model, "dinov2_small", tmp_path)
    expected = source.state_dict()
    ours = model.net.state_dict()
    assert ours.keys() == expected.keys() - {"embeddings.mask_token"}
    interpolated = "embeddings.position_embeddings"  # 1 + 37x37 -> 1 + 8x8
    assert ours[interpolated].shape == (1, 65, 384) and torch.equal(ours[interpolated][:, 0],
                                                                    expected[interpolated][:, 0])
    assert all(torch.equal(ours[k], expected[k]) for k in ours if k != interpolated)
    _assert_head_untouched(model, head)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        upsampled = nn.functional.interpolate(x, size=(112, 112), mode="bilinear", align_corners=False)
        assert torch.allclose(model.features(x), source.eval()(pixel_values=upsampled).pooler_output, atol=1e-5)


def test_pretrained_state_loads_into_a_fresh_backbone_as_the_runner_does(tmp_path: Path) -> None:
    """The runner loads the state dict of one loaded model into each fresh learner: the shapes must agree."""
    source = Dinov2Model(Dinov2Config(**DINOV2_SMALL, image_size=518, patch_size=14))
    source.save_pretrained(tmp_path / "dinov2_small-imagenet")
    loaded, _ = _fresh("dinov2_small", in_channels=1)
    load_imagenet_weights(loaded, "dinov2_small", tmp_path)
    fresh, _ = _fresh("dinov2_small", in_channels=1)
    apply_backbone_state(fresh, backbone_state(loaded))  # strict but for the head
    kernel = source.state_dict()["embeddings.patch_embeddings.projection.weight"]
    assert torch.allclose(fresh.net.embeddings.patch_embeddings.projection.weight,
                          kernel.sum(dim=1, keepdim=True))  # timm's rule for grey inputs: the RGB sum


# --------------------------------------------------------------------------- offline

@pytest.mark.parametrize(("name", "download", "origin", "local"), [
    ("resnet18_cifar", "_download_torchvision", "https://download.pytorch.org/models/resnet18-",
     "resnet18_cifar-imagenet.pth"),
    ("vit_small", "_download_timm", "https://huggingface.co/timm/vit_small_patch16_224.augreg_in21k_ft_in1k",
     "vit_small-imagenet.safetensors"),
    ("swin", "_download_timm", "https://huggingface.co/timm/swin_tiny_patch4_window7_224.ms_in1k",
     "swin-imagenet.safetensors"),
    ("dinov2_small", "_download_dinov2", "https://huggingface.co/facebook/dinov2-small", "dinov2_small-imagenet"),
])
def test_offline_without_a_local_copy_says_what_to_fetch_and_where(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, download: str, origin: str,
        local: str) -> None:
    def offline(*_args: object) -> None:
        raise OSError("Name or service not known")

    monkeypatch.setattr(imagenet, download, offline)
    model, head = _fresh(name)
    weights_dir = tmp_path / "weights"
    with pytest.raises(WeightsUnavailableError) as info:
        load_imagenet_weights(model, name, weights_dir)
    _assert_head_untouched(model, head)
    message = str(info.value)
    assert f"backbone '{name}'" in message and "Name or service not known" in message
    assert origin in message and f"copy to {weights_dir / local}" in message
    assert isinstance(info.value, AlbError)
