"""Detectors: torchvision's SSD300-VGG16 (seed 000's model) and SSDlite320-MobileNetV3, and a small SSD for the
embedded set. Each is a torchvision ``SSD``: it takes a list of float images in [0, 1] (and, training, their
targets) and returns its losses or its detections; ``num_classes`` counts the background (class 0)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.ssd import SSD, SSDHead

from benchmark.errors import AlbError


class WeightsUnavailableError(AlbError):
    """ImageNet weights of a detector's backbone are neither in the weights folder nor downloadable."""


class SmallSSDBackbone(nn.Module):
    """Four conv stages (stride 2 each after a stride-4 stem) whose outputs at strides 8, 16, 32 and 64 feed
    the SSD head: at 64 px, 8x8 / 4x4 / 2x2 / 1x1 feature maps."""

    def __init__(self, channels: int, widths: tuple[int, ...] = (32, 64, 64, 64)) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                                 nn.ReLU(inplace=True))

        self.stem = nn.Sequential(block(channels, 16, 2), block(16, 32, 2))
        stages, cin = [], 32
        for width in widths:
            stages.append(nn.Sequential(block(cin, width, 2), block(width, width, 1)))
            cin = width
        self.stages = nn.ModuleList(stages)
        self.out_channels = list(widths)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        x = self.stem(x)
        features: OrderedDict[str, torch.Tensor] = OrderedDict()
        for i, stage in enumerate(self.stages):
            x = stage(x)
            features[str(i)] = x
        return features


def small_ssd(num_classes: int, channels: int, image_size: int, mean: list[float], std: list[float],
              **postprocess: float) -> SSD:
    """A small SSD for the embedded digits set (about 0.3 M parameters); trains on a CPU in minutes."""
    backbone = SmallSSDBackbone(channels)
    # box scales from 0.15 to 0.75 of the image: the embedded digits are 10-24 px on a 64 px canvas
    anchors = DefaultBoxGenerator([[2], [2], [2], [2]], scales=[0.15, 0.3, 0.45, 0.6, 0.75])
    head = SSDHead(backbone.out_channels, anchors.num_anchors_per_location(), num_classes)
    return SSD(backbone, anchors, (image_size, image_size), num_classes, image_mean=mean, image_std=std,
               head=head, **postprocess)  # type: ignore[arg-type]


def ssd300_vgg16(num_classes: int, imagenet: bool, weights_dir: Path, **postprocess: float) -> SSD:
    """torchvision's SSD300 with a VGG-16 backbone (Liu et al. 2016). ``imagenet``: the VGG-16 features
    torchvision's SSD starts from (IMAGENET1K_FEATURES), from ``weights_dir/ssd300_vgg16-imagenet.pth`` or
    downloaded there; the first layers stay frozen as torchvision's default (4 trainable of 5). Scratch: all
    trainable."""
    from torchvision.models import VGG16_Weights, vgg16
    from torchvision.models.detection import ssd as tv_ssd

    vgg = vgg16()
    if imagenet:
        vgg.load_state_dict(_state_dict(VGG16_Weights.IMAGENET1K_FEATURES, weights_dir, "ssd300_vgg16"))
    backbone = tv_ssd._vgg_extractor(vgg, False, 4 if imagenet else 5)
    anchors = DefaultBoxGenerator([[2], [2, 3], [2, 3], [2, 3], [2], [2]],
                                  scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05], steps=[8, 16, 32, 64, 100, 300])
    # the normalisation the VGG features were trained with (torchvision's ssd300_vgg16)
    return SSD(backbone, anchors, (300, 300), num_classes, image_mean=[0.48235, 0.45882, 0.40784],
               image_std=[1.0 / 255.0] * 3, **postprocess)  # type: ignore[arg-type]


def ssdlite320_mobilenet_v3_large(num_classes: int, **postprocess: float) -> SSD:
    """torchvision's SSDlite320 with a MobileNetV3-Large backbone, from scratch."""
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large as build

    return build(weights=None, weights_backbone=None, num_classes=num_classes, **postprocess)


def _state_dict(weights: object, weights_dir: Path, name: str) -> dict[str, torch.Tensor]:
    """The weights from weights_dir/<name>-imagenet.pth, downloaded there when missing."""
    file_name = f"{name}-imagenet.pth"
    try:
        return weights.get_state_dict(progress=False, model_dir=str(weights_dir), file_name=file_name,  # type: ignore[attr-defined]
                                      check_hash=False)
    except Exception as exc:  # URLError, OSError, RuntimeError ...
        raise WeightsUnavailableError(
            f"init: imagenet for '{name}': {weights_dir / file_name} is missing and could not be downloaded "
            f"({type(exc).__name__}: {exc}). Download {weights.url} and save it as {weights_dir / file_name}"  # type: ignore[attr-defined]
        ) from None


def build_detector(name: str, num_classes: int, channels: int, image_size: int, mean: list[float],
                   std: list[float], imagenet: bool, weights_dir: Path, **postprocess: float) -> SSD:
    """The detector ``name`` for ``num_classes`` object classes (the background is added here)."""
    if name == "small_ssd":
        return small_ssd(num_classes + 1, channels, image_size, mean, std, **postprocess)
    if name == "ssd300_vgg16":
        return ssd300_vgg16(num_classes + 1, imagenet, weights_dir, **postprocess)
    if name == "ssdlite320_mobilenet_v3_large":
        return ssdlite320_mobilenet_v3_large(num_classes + 1, **postprocess)
    raise AlbError(f"unknown detector '{name}'")
