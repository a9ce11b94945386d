"""Backbone registry. Every backbone maps (B, C, H, W) float images to logits and
exposes its penultimate embedding (see :class:`benchmark.models.base.Backbone`)."""

from __future__ import annotations

from typing import Any

from benchmark.registry import BackboneInfo, Registry

BACKBONES: Registry[Any, BackboneInfo] = Registry("backbone", BackboneInfo)

# Where MC dropout goes on the small CNNs, as in Gal, Islam & Ghahramani 2017 ("Deep Bayesian Active
# Learning with Image Data", their Keras MNIST model): dropout 0.25 after the convolutional block and
# 0.5 before the classifier. Other backbones without dropout get only the classifier site.
GAL_MC_DROPOUT = {"conv": 0.25, "head": 0.5}
HEAD_MC_DROPOUT = {"head": 0.5}


def mc_dropout_sites(name: str) -> dict[str, float]:
    """Dropout sites ("conv": after the convolutional block, "head": before the classifier) and their p that
    a cell needing MC dropout gets on backbone ``name``; empty for backbones with dropout layers of their own."""
    info = BACKBONES.info(name)
    if info.has_dropout:
        return {}
    return dict(info.mc_dropout if info.mc_dropout is not None else HEAD_MC_DROPOUT)


_C = "benchmark.models.cifar_nets"
for _name, _summary, _min_size, _dropout in (
    ("resnet34_cifar", "ResNet-34 for 32x32 inputs (3x3 stem, no max-pool)", 8, False),
    ("resnet56_cifar", "ResNet-56, the 6n+2 CIFAR ResNet of He et al. 2016 (option-A shortcuts; seed 000)", 8, False),
    ("vgg16_cifar", "VGG-16 with batch norm, one linear classifier on the 512-d output (seed 000)", 32, False),
    ("wideresnet28_2", "WRN-28-2 (Zagoruyko & Komodakis 2016), pre-activation, dropout 0", 4, False),
    ("mobilenetv2", "MobileNetV2 for CIFAR (first conv and 24-channel stage at stride 1; seed 000)", 8, False),
    ("densenet121", "DenseNet-BC-121 for CIFAR (growth 32, 3x3 stem, no pool; seeds 000, 001)", 8, False),
    ("densenet201", "DenseNet-BC-201 for CIFAR (growth 32; seed 001)", 8, False),
    ("cnn13", "13-layer ConvNet of Laine & Aila 2017 (batch norm, dropout 0.5; seed 004)", 12, True),
    ("lenet", "LeNet-5 style CNN for 28x28 inputs (MNIST-size)", 18, False),
):
    BACKBONES.register(_name, f"{_C}:{_name}", _summary, BackboneInfo(
        _min_size, has_dropout=_dropout, imagenet=_name == "resnet34_cifar",
        mc_dropout=GAL_MC_DROPOUT if _name == "lenet" else None))

# imagenet=True: benchmark.models.imagenet can load pre-trained weights for init: imagenet
_T = "benchmark.models.transformer_nets"
for _name, _summary, _min_size in (
    ("vit_small", "ViT-S (timm) with 4x4 patches at 32x32: 64 tokens + class token; embedding 384", 8),
    ("swin", "Swin-T (timm) with 2x2 patches and 4x4 windows at 32x32, no stochastic depth; embedding 768", 16),
    ("dinov2_small", "DINOv2-S (transformers): 4x4 patches at 32x32 from scratch; pre-trained: 14x14 patches, "
     "inputs upsampled to 224", 8),
):
    BACKBONES.register(_name, f"{_T}:{_name}", _summary, BackboneInfo(_min_size, imagenet=True))

BACKBONES.register(
    "small_cnn", "benchmark.models.small_cnn:SmallCNN",
    "3-layer CNN with batch norm and global pooling for small inputs (digits, MNIST)",
    BackboneInfo(4, mc_dropout=GAL_MC_DROPOUT),
)
BACKBONES.register(
    "tiny_cnn", "benchmark.models.small_cnn:tiny_cnn",
    "small_cnn at half width (16-32-64 channels), a quarter of its compute: the quickstart's backbone",
    BackboneInfo(4, mc_dropout=GAL_MC_DROPOUT),
)
BACKBONES.register(
    "resnet18_cifar", "benchmark.models.resnet_cifar:resnet18_cifar",
    "ResNet-18 for 32x32 inputs: 3x3 stem, no max-pool (as in the papers' code)",
    BackboneInfo(8, imagenet=True),
)

# Detectors (task: detection, benchmark/detection/models.py): cells of detection datasets name them as `backbone`.
_DM = "benchmark.detection.models"
BACKBONES.register(
    "small_ssd", f"{_DM}:small_ssd",
    "small SSD (4 conv stages, feature maps at strides 8-64, ~0.3 M parameters) for the embedded detection set",
    BackboneInfo(32, task="detection"),
)
BACKBONES.register(
    "ssd300_vgg16", f"{_DM}:ssd300_vgg16",
    "torchvision's SSD300 with a VGG-16 backbone (Liu et al. 2016; seed 000's detector); init: imagenet loads "
    "the VGG-16 features torchvision's SSD starts from",
    BackboneInfo(32, imagenet=True, task="detection"),
)
BACKBONES.register(
    "ssdlite320_mobilenet_v3_large", f"{_DM}:ssdlite320_mobilenet_v3_large",
    "torchvision's SSDlite320 with a MobileNetV3-Large backbone (from scratch)",
    BackboneInfo(32, task="detection"),
)
