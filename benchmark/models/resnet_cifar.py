"""CIFAR-style ResNet (He et al. 2016) as used by the papers' code: a 3x3 stem with
stride 1 and no max-pool, so 32x32 inputs reach the last stage at 4x4."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from benchmark.models.base import Backbone


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, c_out: int, stride: int, shortcut: nn.Module | None = None) -> None:
        """``shortcut`` replaces the default (identity, or 1x1 conv + BN when the shape changes)."""
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = shortcut if shortcut is not None else nn.Identity()
        if shortcut is None and (stride != 1 or c_in != c_out):
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCifar(Backbone):
    def __init__(self, blocks_per_stage: tuple[int, ...], num_classes: int, in_channels: int = 3,
                 widths: tuple[int, ...] = (64, 128, 256, 512)) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages: list[nn.Module] = []
        self._stage_ends: list[int] = []
        c_in = widths[0]
        for i, (n_blocks, width) in enumerate(zip(blocks_per_stage, widths, strict=True)):
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                stages.append(BasicBlock(c_in, width, stride))
                c_in = width
            self._stage_ends.append(len(stages) - 1)
        self.stages = nn.Sequential(*stages)
        self.embedding_dim = c_in
        self.head = nn.Linear(c_in, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stages(self.stem(x))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)

    def tap_points(self) -> list[nn.Module]:
        return [self.stages[i] for i in self._stage_ends]  # the last block of each stage


def resnet18_cifar(num_classes: int, in_channels: int = 3) -> ResNetCifar:
    return ResNetCifar((2, 2, 2, 2), num_classes=num_classes, in_channels=in_channels)
