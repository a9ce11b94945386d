"""The contract every backbone follows."""

from __future__ import annotations

import torch
from torch import nn


class Backbone(nn.Module):
    """``features`` gives the penultimate embedding, ``head`` the linear classifier.

    Strategies that need embeddings (CoreSet, BADGE, ...) call
    :meth:`forward_with_embedding` so the pool is passed through the network once.
    """

    embedding_dim: int
    head: nn.Linear

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward_with_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.features(x)
        return self.head(embedding), embedding


def build_backbone(name: str, num_classes: int, in_channels: int) -> Backbone:
    from benchmark.models import BACKBONES

    return BACKBONES.get(name)(num_classes=num_classes, in_channels=in_channels)
