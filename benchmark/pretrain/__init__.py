"""Initial weights of a cell's backbone (``init``): self-supervised pre-training on the whole unlabeled pool
(simsiam | deepcluster | rotation, cached on disk), checkpoint files and ImageNet weights.

Use :func:`initial_backbone_state` to get the state dict (without the classifier) and
:func:`apply_backbone_state` to load it into a freshly built backbone."""

from __future__ import annotations

from benchmark.pretrain.initial import apply_backbone_state, initial_backbone_state

__all__ = ["apply_backbone_state", "initial_backbone_state"]
