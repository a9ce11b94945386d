"""Supervised training of the whole network on the labeled set, with an auxiliary module trained jointly."""

from __future__ import annotations

import math
import time

import torch
from torch import nn
from torch.nn import functional as F

from benchmark.config import TrainingConfig
from benchmark.training.augment import Normalizer
from benchmark.training.execution import FP32_CPU, Execution
from benchmark.training.joint import JointModule, TrainingStep
from benchmark.training.loop import (
    AugmentationSpec,
    EpochCallback,
    LabeledStream,
    TrainResult,
    augment_batch,
    end_epoch,
    epoch_batches,
    make_optimizer,
    make_scheduler,
    optimizer_step,
)


def train_supervised(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: TrainingConfig,
                     normalize: Normalizer, augmentation: AugmentationSpec, generator: torch.Generator,
                     on_epoch: EpochCallback | None = None,
                     aux: JointModule | None = None,
                     execution: Execution = FP32_CPU) -> TrainResult:
    """Supervised training of the whole network on (images, labels), both already on the model's
    device; with ``aux``, the auxiliary module is trained jointly (its loss added to the
    cross-entropy). ``cfg.head`` and ``cfg.semi`` are not read here."""
    start = time.perf_counter()
    params = list(model.parameters()) + (list(aux.module.parameters()) if aux is not None else [])
    optimizer = make_optimizer(params, cfg.optimizer)
    scheduler = make_scheduler(optimizer, cfg.schedule, cfg.epochs)
    n = images.shape[0]
    mean_loss = float("nan")
    model.train()
    if aux is not None:
        aux.module.train()
    stream = LabeledStream(n, generator, images.device)

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return execution.prepare_input(normalize(x))

    def augment(x: torch.Tensor) -> torch.Tensor:
        return augment_batch(x, cfg.augmentation, augmentation, generator)

    for epoch in range(cfg.epochs):
        loss_sum = torch.zeros((), device=images.device)
        seen = 0
        step = TrainingStep(prepare, augment, generator, epoch)
        for idx in _epoch_index_batches(n, cfg, aux, generator, images.device, stream):
            x = augment(images[idx])
            with execution.autocast():
                if aux is None:
                    loss = F.cross_entropy(model(prepare(x)), labels[idx])
                else:
                    loss = aux.training_loss(model, x, labels[idx], step)
            optimizer_step(loss, optimizer)
            loss_sum += loss.detach().float() * idx.numel()
            seen += idx.numel()
        mean_loss = end_epoch(scheduler, loss_sum, seen, epoch + 1, cfg.epochs, on_epoch)
    return TrainResult(final_loss=mean_loss, seconds=time.perf_counter() - start)


def _epoch_index_batches(n: int, cfg: TrainingConfig, aux: JointModule | None, generator: torch.Generator,
                         device: torch.device, stream: LabeledStream) -> list[torch.Tensor]:
    """The labeled mini-batches of one epoch: one pass over L, or (epoch_length: pool) as many full batches
    as pairing every unlabeled sample once takes, L cycling through fresh permutations (WAAL's loader)."""
    unlabeled = aux.unlabeled_images if aux is not None else None
    if cfg.epoch_length != "pool" or unlabeled is None:
        return epoch_batches(n, cfg.batch_size, generator, device)
    steps = math.ceil(max(n, unlabeled.shape[0]) / cfg.batch_size)
    return [stream.take(cfg.batch_size) for _ in range(steps)]  # L repeats within a batch when |L| < batch
