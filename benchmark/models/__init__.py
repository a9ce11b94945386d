"""Backbone registry. Every backbone maps (B, C, H, W) float images to logits and
exposes its penultimate embedding (see :class:`benchmark.models.base.Backbone`)."""

from __future__ import annotations

from benchmark.registry import Registry

BACKBONES: Registry = Registry("backbone")

BACKBONES.plan(
    ["resnet34_cifar", "resnet56_cifar", "vgg16_cifar", "densenet121", "densenet201", "mobilenetv2",
     "wideresnet28_2", "cnn13", "lenet", "vit_small", "swin", "dinov2_small"],
    "planned: the backbones of the papers' training protocols")
BACKBONES.register(
    "small_cnn", "benchmark.models.small_cnn:SmallCNN",
    "3-layer CNN with batch norm and global pooling for small inputs (digits, MNIST)",
    min_image_size=4,
)
BACKBONES.register(
    "resnet18_cifar", "benchmark.models.resnet_cifar:resnet18_cifar",
    "ResNet-18 for 32x32 inputs: 3x3 stem, no max-pool (as in the papers' code)",
    min_image_size=8,
)
