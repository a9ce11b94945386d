"""A backbone: logits plus the penultimate embedding (benchmark.models.base.Backbone)."""

import torch
from torch import nn

from benchmark.models.base import Backbone


class ExampleMLP(Backbone):
    """Images pooled to 8x8, then one hidden layer; alb builds it as ExampleMLP(num_classes=, in_channels=)."""

    def __init__(self, num_classes: int, in_channels: int, hidden: int = 64) -> None:
        super().__init__()  # sets the dropout sites alb may fill (head_dropout, conv_dropout)
        self.pool = nn.AdaptiveAvgPool2d(8)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, hidden), nn.ReLU())
        self.embedding_dim = hidden
        self.head = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.conv_dropout(self.pool(x)))

    def tap_points(self) -> list[nn.Module]:
        return [self.pool]  # N x C x 8 x 8 maps, for auxiliary modules such as LL4AL's
