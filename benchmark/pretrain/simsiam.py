"""SimSiam (Chen & He 2021; seed 003 Sec. 3.2 and 4): two strongly augmented views of each image, a
projector on the backbone's embedding, a predictor on one side and a stop-gradient on the other; the loss is
the symmetrised negative cosine similarity D(p1, z2) / 2 + D(p2, z1) / 2."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from benchmark.config import PretrainingConfig
from benchmark.models.base import Backbone
from benchmark.pretrain.blur import random_gaussian_blur
from benchmark.pretrain.common import (
    EpochCallback,
    backbone_parameters,
    check_pool,
    embed,
    finish_epoch,
    init_linears,
    make_sgd,
    set_lr,
)
from benchmark.pretrain.settings import resolve
from benchmark.training.augment import Normalizer, strong_augment
from benchmark.training.execution import Execution
from benchmark.training.loop import epoch_batches, optimizer_step

# the CIFAR variant of Chen & He 2021 (Sec. 5 / App. D): 2-layer projector, 2048 wide; predictor bottleneck 512
PROJECTOR_DIM = 2048
PREDICTOR_HIDDEN = 512


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """D(p, z) = -cos(p, stopgrad(z)), averaged over the batch; in [-1, 1]. No gradient reaches ``z``."""
    return -(F.normalize(p.float(), dim=1) * F.normalize(z.detach().float(), dim=1)).sum(dim=1).mean()


def simsiam_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """The symmetrised loss of seed 003 eq. (1): D(p1, z2) / 2 + D(p2, z1) / 2."""
    return 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)


class SimSiamHeads(nn.Module):
    """Projector g (embedding -> z) and predictor h (z -> p)."""

    def __init__(self, embedding_dim: int, dim: int = PROJECTOR_DIM, hidden: int = PREDICTOR_HIDDEN) -> None:
        super().__init__()
        self.projector = nn.Sequential(
            nn.Linear(embedding_dim, dim, bias=False), nn.BatchNorm1d(dim), nn.ReLU(inplace=True),
            nn.Linear(dim, dim, bias=False), nn.BatchNorm1d(dim, affine=False))
        self.predictor = nn.Sequential(
            nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, dim))

    def forward(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.projector(embedding)
        return self.predictor(z), z


def simsiam_view(x: torch.Tensor, hflip: bool, generator: torch.Generator) -> torch.Tensor:
    """One SimSiam view of a uint8 batch (floats on the 0..255 scale): the strong policy (seed 003 l.109:
    crop 0.2-1, flip, colour jitter p 0.8, grayscale p 0.2), then Gaussian blur with sigma in [0.1, 2]
    (seed 003 l.111) applied with p = 0.5 (SimSiam's official recipe; see benchmark.pretrain.blur). Blur
    after flip instead of before it, as in the official order, changes nothing: the kernel is symmetric."""
    return random_gaussian_blur(strong_augment(x, hflip, generator), generator)


def pretrain_simsiam(model: Backbone, images: torch.Tensor, normalize: Normalizer, hflip: bool,
                     cfg: PretrainingConfig, num_classes: int, generator: torch.Generator, execution: Execution,
                     on_epoch: EpochCallback | None = None) -> list[float]:
    """Train ``model``'s feature extractor in place on the uint8 pool ``images`` (on the model's device);
    returns the mean loss of every epoch."""
    check_pool("simsiam", images)
    hyper = resolve("simsiam", cfg, num_classes)
    heads = SimSiamHeads(model.embedding_dim).to(images.device)
    init_linears(heads, generator)
    optimizer = make_sgd(backbone_parameters(model) + list(heads.parameters()), hyper)
    n = images.shape[0]
    losses: list[float] = []
    model.train()
    heads.train()
    for epoch in range(hyper.epochs):
        set_lr(optimizer, hyper, epoch)
        loss_sum = torch.zeros((), device=images.device)
        for idx in epoch_batches(n, min(hyper.batch_size, n), generator, images.device):
            x = images[idx]
            x1, x2 = simsiam_view(x, hflip, generator), simsiam_view(x, hflip, generator)
            with execution.autocast():
                # one pass per view, as the paper's code does: batch norm normalises each view on its own
                p1, z1 = heads(embed(model, x1, normalize, execution))
                p2, z2 = heads(embed(model, x2, normalize, execution))
            loss = simsiam_loss(p1, p2, z1, z2)
            optimizer_step(loss, optimizer)
            loss_sum += loss.detach() * idx.numel()
        losses.append(finish_epoch("simsiam", loss_sum, n, epoch, hyper.epochs, on_epoch))
    return losses
