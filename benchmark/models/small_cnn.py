"""Small CNNs for 8x8 to 28x28 inputs: small_cnn (32-64-128 channels) and tiny_cnn, the quickstart's
(16-32-64: a quarter of the multiply-adds; on 8x8 digits the quickstart's accuracies at 180 labels
stay within ~0.02 of small_cnn's, and its 18 cells run in under a minute on two CPU cores)."""

from __future__ import annotations

import torch
from torch import nn

from benchmark.models.base import Backbone


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class SmallCNN(Backbone):
    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn_relu(in_channels, width),
            _conv_bn_relu(width, 2 * width),
            nn.MaxPool2d(2),
            _conv_bn_relu(2 * width, 4 * width),
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.embedding_dim = 4 * width
        self.head = nn.Linear(self.embedding_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # conv_dropout: the MC-dropout site after the convolutional block (Gal et al. 2017), before pooling
        return self.pool(self.conv_dropout(self.body(x)))

    def tap_points(self) -> list[nn.Module]:
        return [self.body[0], self.body[1], self.body[3]]  # the three conv blocks


def tiny_cnn(num_classes: int, in_channels: int = 1) -> SmallCNN:
    """:class:`SmallCNN` at half width: 16-32-64 channels, a 64-d embedding."""
    return SmallCNN(num_classes, in_channels, width=16)
