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

    def __init__(self) -> None:
        super().__init__()
        # replaced by nn.Dropout in build_backbone when training.head_dropout > 0
        self.head_dropout: nn.Module = nn.Identity()
        # replaced by nn.Dropout when training.conv_dropout > 0; only backbones whose registry entry
        # declares a "conv" MC-dropout site apply it (after their convolutional block)
        self.conv_dropout: nn.Module = nn.Identity()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def tap_points(self) -> list[nn.Module]:
        """Modules whose outputs (N, C, H, W feature maps, shallow to deep) auxiliary modules such as
        LL4AL's loss-prediction module read; for ResNets the output of each stage."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_embedding(x)[0]

    def forward_with_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.features(x)
        return self.head(self.head_dropout(embedding)), embedding


def build_backbone(name: str, num_classes: int, in_channels: int, head_dropout: float = 0.0,
                   conv_dropout: float = 0.0) -> Backbone:
    """A fresh backbone; ``head_dropout`` / ``conv_dropout`` > 0 put dropout before the classifier / after
    the convolutional block (the latter only where the registry declares that site)."""
    from benchmark.models import BACKBONES, mc_dropout_sites

    model = BACKBONES.get(name)(num_classes=num_classes, in_channels=in_channels)
    if not isinstance(model, Backbone):  # a plugin's factory (benchmark.plugins): say so before training fails
        from benchmark.errors import ConfigError

        raise ConfigError(f"backbone '{name}' returned a {type(model).__name__}, not a "
                          "benchmark.models.base.Backbone (features, head, embedding_dim)")
    if head_dropout > 0:
        model.head_dropout = nn.Dropout(head_dropout)
    if conv_dropout > 0:
        if "conv" not in mc_dropout_sites(name):
            raise ValueError(f"backbone '{name}' has no dropout site after its convolutional block")
        model.conv_dropout = nn.Dropout(conv_dropout)
    return model
