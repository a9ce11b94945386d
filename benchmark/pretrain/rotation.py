"""Rotation prediction (Gidaris et al. 2018; seed 001's appendix on unsupervised pre-training): every image
of a mini-batch is shown at 0, 90, 180 and 270 degrees and the network classifies which rotation it sees."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from benchmark.config import PretrainingConfig
from benchmark.models.base import Backbone
from benchmark.pretrain.common import (
    EpochCallback,
    backbone_parameters,
    check_pool,
    embed,
    finish_epoch,
    init_linear,
    make_sgd,
    set_lr,
)
from benchmark.pretrain.settings import resolve
from benchmark.training.augment import Normalizer, random_crop, random_hflip
from benchmark.training.execution import Execution
from benchmark.training.loop import epoch_batches, optimizer_step

ROTATIONS = 4


def rotate_all(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, H) -> (4B, C, H, H) images and (4B,) labels: block r holds every image rotated by r x 90
    degrees counter-clockwise (``np.rot90``'s direction), labelled r."""
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"rotation pre-training needs square images, got {images.shape[-2]}x{images.shape[-1]}")
    rotated = torch.cat([torch.rot90(images, r, dims=(2, 3)) for r in range(ROTATIONS)])
    labels = torch.arange(ROTATIONS, device=images.device).repeat_interleave(images.shape[0])
    return rotated, labels


def crop_padding(image_size: int) -> int:
    """The standard crop's padding scaled to the image: 4 px at 32 px (CIFAR), 1 px at 8 px (digits)."""
    return max(1, image_size // 8)


def pretrain_rotation(model: Backbone, images: torch.Tensor, normalize: Normalizer, hflip: bool,
                      cfg: PretrainingConfig, num_classes: int, generator: torch.Generator, execution: Execution,
                      on_epoch: EpochCallback | None = None) -> list[float]:
    """Train ``model``'s feature extractor in place on the uint8 pool ``images`` (on the model's device);
    ``cfg.batch_size`` images per step, each in all four rotations. Returns the mean loss of every epoch."""
    check_pool("rotation", images)
    hyper = resolve("rotation", cfg, num_classes)
    head = nn.Linear(model.embedding_dim, ROTATIONS).to(images.device)
    init_linear(head, generator)
    optimizer = make_sgd(backbone_parameters(model) + list(head.parameters()), hyper)
    n, padding = images.shape[0], crop_padding(images.shape[-1])
    losses: list[float] = []
    model.train()
    for epoch in range(hyper.epochs):
        set_lr(optimizer, hyper, epoch)
        loss_sum = torch.zeros((), device=images.device)
        for idx in epoch_batches(n, min(hyper.batch_size, n), generator, images.device):
            # crop and flip before rotating, so the four rotations of an image share one view
            x = random_crop(images[idx], padding, generator)
            if hflip:
                x = random_hflip(x, generator)
            x, targets = rotate_all(x)
            with execution.autocast():
                logits = head(embed(model, x, normalize, execution))
            loss = F.cross_entropy(logits.float(), targets)
            optimizer_step(loss, optimizer)
            loss_sum += loss.detach() * idx.numel()
        losses.append(finish_epoch("rotation", loss_sum, n, epoch, hyper.epochs, on_epoch))
    return losses
