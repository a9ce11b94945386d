"""Vision transformers for 32x32 inputs: ViT-S and Swin-T from timm, DINOv2-S from HuggingFace transformers.

Seed 000 trains "ViT-Small" and a "Swin Transformer" (timm) from random weights on CIFAR-10 and DINOv2 (HF
transformers, random and pre-trained) on LabelMe1250K, but its text (results table and README; its scripts
smallvit_c10.py / swin_c10.py are not available) gives no patch or window sizes, so the adaptations below
are the usual CIFAR ones, chosen here:

* ``vit_small``: ViT-S/4 (embed 384, depth 12, 6 heads, MLP ratio 4) at img_size 32 with 4x4 patches: an 8x8
  grid of 64 tokens plus the class token. Embedding = the final-norm class token (timm's pre-logits).
* ``swin``: Swin-T (embed 96, depths 2-2-6-2, heads 3-6-12-24) with 2x2 patches and 4x4 windows: stages at
  16x16, 8x8, 4x4, 2x2 tokens (timm clamps the window of the last stage to 2x2 and drops the shift where the
  window covers the whole map). Stochastic depth is off (timm's default 0.1) so that, like every other alb
  backbone without dropout, a train-mode forward is deterministic. Embedding = the average-pooled
  final-norm last stage, 768-d.
* ``dinov2_small``: the dinov2-small architecture (hidden 384, 12 layers, 6 heads, MLP ratio 4, layer
  scale 1) with its own 14x14 patches: ``features`` upsamples every input (bilinear) to
  :data:`DINOV2_INPUT` = 112 px, an 8x8 grid of 64 tokens + CLS, as many as ViT-S/4 at 32 px (each token sees
  about a 4x4 patch of the 32x32 image). The pre-trained weights (``init: imagenet``, see
  :mod:`benchmark.models.imagenet`) thus keep their patch embedding unchanged, only their position embeddings
  are interpolated (as transformers would at run time) from 37x37 to 8x8, and random and pre-trained models
  share one architecture, so the runner can load either state dict into a fresh backbone. 224 px (DINOv2's
  training resolution) would cost 4x the compute (256 tokens). Embedding = the layer-normed CLS token.

ViT and Swin accept other input sizes too (``dynamic_img_size``: position embeddings are interpolated, Swin
pads to whole windows), so 28x28 digits work; DINOv2 resizes every input to 112 px.

``tap_points`` (the loss-prediction module of LL4AL reads N, C, H, W maps there) are identity modules fed
with the token maps reshaped to N, C, H, W without the class token: for ViT and DINOv2 the outputs of
blocks 3, 6, 9, 12 (8x8 maps), for Swin the output of each of the four stages.
"""

from __future__ import annotations

from typing import Any

import timm
import torch
from torch import nn
from torch.nn import functional as F
from transformers import Dinov2Config, Dinov2Model

from benchmark.models.base import Backbone

# timm architecture (whose ImageNet weights imagenet.py resamples to this model) and the create_model
# arguments that adapt it to 32x32 inputs
TIMM_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "vit_small": ("vit_small_patch16_224", {"img_size": 32, "patch_size": 4, "dynamic_img_size": True}),
    "swin": ("swin_tiny_patch4_window7_224", {"img_size": 32, "patch_size": 2, "window_size": 4,
                                              "drop_path_rate": 0.0, "strict_img_size": False,
                                              "dynamic_img_size": True}),
}
_TIMM_TAPS = {"vit_small": [2, 5, 8, 11], "swin": [0, 1, 2, 3]}  # block / stage indices, 0-based

DINOV2_SMALL = {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "mlp_ratio": 4,
                "layerscale_value": 1.0}
DINOV2_PATCH = 14  # the pre-trained patch size, kept so that the weights need no resampling
DINOV2_INPUT = 112  # 8x8 patches


class _MapTaps(nn.Module):
    """Identity modules whose forward hooks see the intermediate N, C, H, W maps (``tap_points``)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.points = nn.ModuleList(nn.Identity() for _ in range(n))

    def forward(self, maps: list[torch.Tensor]) -> None:
        for point, feature_map in zip(self.points, maps, strict=True):
            point(feature_map)


class TimmBackbone(Backbone):
    """A headless timm model (``num_classes=0``) with alb's linear head."""

    def __init__(self, backbone: str, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        arch, kwargs = TIMM_MODELS[backbone]
        self.net = timm.create_model(arch, pretrained=False, num_classes=0, in_chans=in_channels, **kwargs)
        self.in_channels = in_channels
        self._tap_indices = _TIMM_TAPS[backbone]
        self.taps = _MapTaps(len(self._tap_indices))
        self.embedding_dim = int(self.net.num_features)
        self.head = nn.Linear(self.embedding_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        final, maps = self.net.forward_intermediates(x, indices=self._tap_indices, norm=False, output_fmt="NCHW")
        self.taps(maps)
        return self.net.forward_head(final, pre_logits=True)

    def tap_points(self) -> list[nn.Module]:
        return list(self.taps.points)


def dinov2_config(in_channels: int) -> Dinov2Config:
    # no mask token: it is only used for masked-image pre-training and would get no gradient here
    return Dinov2Config(**DINOV2_SMALL, image_size=DINOV2_INPUT, patch_size=DINOV2_PATCH, num_channels=in_channels,
                        use_mask_token=False)


class Dinov2Backbone(Backbone):
    """A HuggingFace ``Dinov2Model`` fed inputs resized to :data:`DINOV2_INPUT` px."""

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        config = dinov2_config(in_channels)
        self.net = Dinov2Model(config)
        self.in_channels = in_channels
        self.taps = _MapTaps(4)
        self.embedding_dim = config.hidden_size
        self.head = nn.Linear(self.embedding_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (DINOV2_INPUT, DINOV2_INPUT):
            x = F.interpolate(x, size=(DINOV2_INPUT, DINOV2_INPUT), mode="bilinear", align_corners=False)
        out = self.net(pixel_values=x, output_hidden_states=True)
        h = w = DINOV2_INPUT // DINOV2_PATCH
        layers = self.net.config.num_hidden_layers  # hidden_states[i]: the output of layer i (0: the embedding)
        self.taps([_token_map(out.hidden_states[layers * k // 4], h, w) for k in (1, 2, 3, 4)])
        return out.pooler_output  # the CLS token of the final layer norm

    def tap_points(self) -> list[nn.Module]:
        return list(self.taps.points)


def _token_map(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(N, 1 + h*w, C) tokens with a leading CLS token -> (N, C, h, w) map of the patch tokens."""
    patches = tokens[:, 1:]
    return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], h, w)


def vit_small(num_classes: int, in_channels: int = 3) -> TimmBackbone:
    """ViT-S with 4x4 patches at 32x32 (64 tokens); embedding 384."""
    return TimmBackbone("vit_small", num_classes=num_classes, in_channels=in_channels)


def swin(num_classes: int, in_channels: int = 3) -> TimmBackbone:
    """Swin-T with 2x2 patches and 4x4 windows at 32x32; embedding 768."""
    return TimmBackbone("swin", num_classes=num_classes, in_channels=in_channels)


def dinov2_small(num_classes: int, in_channels: int = 3) -> Dinov2Backbone:
    """DINOv2-S with 14x14 patches on inputs resized to 112x112 (64 tokens); embedding 384."""
    return Dinov2Backbone(num_classes=num_classes, in_channels=in_channels)
