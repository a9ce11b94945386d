"""The pieces every training loop shares: optimizer and schedule, mini-batches, one optimisation step,
the training-time augmentation of a batch and the end of an epoch.

The bottom of the training modules: supervised training, the frozen-feature heads, label propagation,
the auxiliary modules, VAAL and pre-training all build their loops from these, and this module imports
none of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from benchmark.config import OptimizerConfig, ScheduleConfig
from benchmark.errors import NonFiniteLossError
from benchmark.training.augment import random_crop, random_hflip, resized_crop_augment, strong_augment

EpochCallback = Callable[[int, int, float], None]


@dataclass(frozen=True)
class AugmentationSpec:
    """The dataset's standard augmentation (crop padding, whether flips preserve labels); :func:`train`
    applies ``training.flip`` to ``hflip``."""

    crop_padding: int
    hflip: bool


@dataclass(frozen=True)
class TrainResult:
    final_loss: float
    seconds: float


def make_optimizer(params: list[nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig,
                   epochs: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Stepped once per epoch."""
    if cfg.name == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, cfg.milestones, gamma=cfg.gamma)
    if cfg.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.t_max or epochs)
    return None


def optimizer_step(loss: torch.Tensor, *optimizers: torch.optim.Optimizer) -> None:
    """One optimisation step: clear the gradients of every optimizer, back-propagate ``loss``, step each in
    order. bf16 autocast needs no loss scaling, so there is none."""
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for optimizer in optimizers:
        optimizer.step()


def epoch_batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> list[torch.Tensor]:
    """A random permutation of 0..n-1 in mini-batches (see :func:`split_batches`)."""
    return split_batches(torch.randperm(n, generator=generator, device=device), batch_size)


def split_batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """``order`` in mini-batches of ``batch_size``; batch norm cannot train on a single sample, so a trailing
    singleton is folded into the previous batch."""
    batches = list(order.split(batch_size))
    if len(batches) > 1 and batches[-1].numel() == 1:
        # pop first, then merge into the new last batch (an assignment evaluates its right side before the target)
        singleton = batches.pop()
        batches[-1] = torch.cat([batches[-1], singleton])
    return batches


class LabeledStream:
    """Indices 0..n-1 in an endless sequence of random permutations: uniform draws from L that visit
    every labeled example equally often, for epochs longer than L (label propagation's batches, and
    WAAL's labeled/unlabeled pairing over the pool)."""

    def __init__(self, n: int, generator: torch.Generator, device: torch.device) -> None:
        self.n, self.generator, self.device = n, generator, device
        self.buffer = torch.empty(0, dtype=torch.long, device=device)

    def take(self, count: int) -> torch.Tensor:
        while self.buffer.numel() < count:
            perm = torch.randperm(self.n, generator=self.generator, device=self.device)
            self.buffer = torch.cat([self.buffer, perm])
        out, self.buffer = self.buffer[:count], self.buffer[count:]
        return out


def augment_batch(x: torch.Tensor, kind: str, spec: AugmentationSpec, generator: torch.Generator) -> torch.Tensor:
    """The training-time view of a uint8 batch: unchanged, standard crop + flip, strong, or resized_crop
    (seed 003 l.111); the last two return floats on the 0..255 scale."""
    if kind == "strong":
        return strong_augment(x, spec.hflip, generator)
    if kind == "resized_crop":
        return resized_crop_augment(x, spec.hflip, generator)
    if kind == "standard":
        x = random_crop(x, spec.crop_padding, generator)
        if spec.hflip:
            x = random_hflip(x, generator)
    return x


def end_epoch(scheduler: torch.optim.lr_scheduler.LRScheduler | None, loss_sum: torch.Tensor, samples: int,
              epoch: int, epochs: int, on_epoch: EpochCallback | None, what: str = "training loss",
              fix: str = "lower training.optimizer.lr or check the data") -> float:
    """Step the schedule, check and report the epoch's mean loss (one device sync per epoch)."""
    if scheduler is not None:
        scheduler.step()
    mean_loss = float(loss_sum) / samples
    if not math.isfinite(mean_loss):
        raise NonFiniteLossError(f"{what} became {mean_loss} in epoch {epoch}; {fix}")
    if on_epoch is not None:
        on_epoch(epoch, epochs, mean_loss)
    return mean_loss
