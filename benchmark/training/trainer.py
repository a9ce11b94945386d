"""Train a backbone on the labeled set with the cell's recipe; evaluate and score the pool."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from benchmark.config import OptimizerConfig, ScheduleConfig, TrainingConfig
from benchmark.errors import NonFiniteLossError
from benchmark.training.augment import (
    Normalizer,
    random_crop,
    random_hflip,
    resized_crop_augment,
    resolve_flip,
    strong_augment,
)
from benchmark.training.aux import AuxTraining, DiscriminatorTraining
from benchmark.training.execution import FP32_CPU, Execution
from benchmark.training.wasserstein import WassersteinTraining

EVAL_BATCH_SIZE = 1024
EpochCallback = Callable[[int, int, float], None]
AnyAux = AuxTraining | DiscriminatorTraining | WassersteinTraining


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


def epoch_batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> list[torch.Tensor]:
    """A random permutation of 0..n-1 in mini-batches (see :func:`split_batches`)."""
    return split_batches(torch.randperm(n, generator=generator, device=device), batch_size)


def split_batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """``order`` in mini-batches of ``batch_size``; batch norm cannot train on a single sample, so a trailing
    singleton is folded into the previous batch."""
    batches = list(order.split(batch_size))
    if len(batches) > 1 and batches[-1].numel() == 1:
        batches[-2] = torch.cat([batches[-2], batches.pop()])
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


def _epoch_index_batches(n: int, cfg: TrainingConfig, aux: AnyAux | None, generator: torch.Generator,
                         device: torch.device, stream: LabeledStream) -> list[torch.Tensor]:
    """The labeled mini-batches of one epoch: one pass over L, or (epoch_length: pool) as many full batches
    as pairing every unlabeled sample once takes, L cycling through fresh permutations (WAAL's loader)."""
    unlabeled = getattr(aux, "unlabeled_images", None)
    if cfg.epoch_length != "pool" or unlabeled is None:
        return epoch_batches(n, cfg.batch_size, generator, device)
    steps = math.ceil(max(n, unlabeled.shape[0]) / cfg.batch_size)
    return [stream.take(cfg.batch_size) for _ in range(steps)]  # L repeats within a batch when |L| < batch


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: TrainingConfig,
          normalize: Normalizer, augmentation: AugmentationSpec, generator: torch.Generator,
          on_epoch: EpochCallback | None = None,
          aux: AnyAux | None = None,
          execution: Execution = FP32_CPU, *, pool_images: torch.Tensor | None = None) -> TrainResult:
    """Train ``model`` on (images, labels), both already on the model's device, with the cell's recipe.

    ``cfg.head`` and ``cfg.semi`` pick the procedure:

    - head ``full``, semi ``none``: supervised training of the whole network (:func:`train_supervised`);
      with ``aux``, the auxiliary module is trained jointly.
    - head ``linear`` / ``svm``: the backbone stays frozen and only ``model.head`` is fit on its features
      (:mod:`benchmark.training.heads`, seed 003).
    - semi ``label_propagation``: seed 004's algorithm 1 (:mod:`benchmark.training.semi`); it needs
      ``pool_images``, the uint8 images of the unlabeled pool on the same device.

    Not supported (a ValueError says so): an auxiliary module with head ``linear`` / ``svm`` (the
    backbone it would train with is frozen) or with label propagation, and label propagation with
    head ``linear`` / ``svm`` (algorithm 1 re-learns the features every epoch). ``execution`` sets
    autocast and memory format, never the recipe. ``augmentation.hflip`` is the dataset's default;
    ``cfg.flip`` (auto | on | off) decides whether the training augmentation flips.
    """
    augmentation = replace(augmentation, hflip=resolve_flip(cfg.flip, augmentation.hflip))
    if cfg.head != "full" and aux is not None:
        raise ValueError(f"training.head: {cfg.head} freezes the backbone, so the auxiliary module "
                         f"({cfg.aux}) cannot be trained with it; use training.head: full or training.aux: none")
    if cfg.semi != "none" and cfg.head != "full":
        raise ValueError(f"training.semi: {cfg.semi} re-learns the backbone's features every epoch and is not "
                         f"supported with training.head: {cfg.head}; use training.head: full or training.semi: none")
    if cfg.semi != "none" and aux is not None:
        raise ValueError(f"training.semi: {cfg.semi} is not supported together with an auxiliary module "
                         f"({cfg.aux}); use training.aux: none or training.semi: none")
    if cfg.head != "full":
        from benchmark.training.heads import train_head

        return train_head(model, images, labels, cfg, normalize, generator, on_epoch, execution, augmentation)
    if cfg.semi == "label_propagation":
        if pool_images is None:
            raise ValueError("training.semi: label_propagation needs the unlabeled pool: pass "
                             "train(..., pool_images=<uint8 images of the unlabeled pool, on the model's device>)")
        from benchmark.training.semi import train_label_propagation

        return train_label_propagation(model, images, labels, pool_images, cfg, normalize, augmentation,
                                       generator, on_epoch, execution)
    return train_supervised(model, images, labels, cfg, normalize, augmentation, generator, on_epoch, aux,
                            execution)


def train_supervised(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: TrainingConfig,
                     normalize: Normalizer, augmentation: AugmentationSpec, generator: torch.Generator,
                     on_epoch: EpochCallback | None = None,
                     aux: AnyAux | None = None,
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
    for epoch in range(cfg.epochs):
        loss_sum = torch.zeros((), device=images.device)
        seen = 0
        for idx in _epoch_index_batches(n, cfg, aux, generator, images.device, stream):
            x = augment_batch(images[idx], cfg.augmentation, augmentation, generator)
            with execution.autocast():
                loss = _batch_loss(model, x, labels[idx], normalize, cfg.augmentation, augmentation, generator,
                                   aux, epoch, execution)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach().float() * idx.numel()
            seen += idx.numel()
        mean_loss = end_epoch(scheduler, loss_sum, seen, epoch + 1, cfg.epochs, on_epoch)
    return TrainResult(final_loss=mean_loss, seconds=time.perf_counter() - start)


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


def _batch_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, normalize: Normalizer, augment: str,
                augmentation: AugmentationSpec, generator: torch.Generator,
                aux: AnyAux | None, epoch: int,
                execution: Execution) -> torch.Tensor:
    """The loss of one labeled mini-batch (plus the auxiliary module's, when one is attached).

    ``wasserstein`` (WAAL) plays its min-max here: the critic takes its own optimizer step(s) on the
    batch's detached embeddings first (max), then the returned loss holds the backbone's part (min)."""
    if aux is None:
        return F.cross_entropy(model(execution.prepare_input(normalize(x))), y)
    if isinstance(aux, DiscriminatorTraining | WassersteinTraining):
        # one forward pass of the labeled batch and as many unlabeled images, contrasted on the embedding
        n = x.shape[0]
        xu = augment_batch(aux.unlabeled_batch(n, generator), augment, augmentation, generator)
        logits, embeddings = model.forward_with_embedding(execution.prepare_input(normalize(torch.cat([x, xu]))))
        if isinstance(aux, WassersteinTraining):
            aux.critic_step(embeddings, n, generator)
            return F.cross_entropy(logits[:n], y) + aux.adversarial_loss(embeddings.float(), n)
        return F.cross_entropy(logits[:n], y) + aux.loss(embeddings.float(), n)
    with aux.taps.active() as maps:
        logits = model(execution.prepare_input(normalize(x)))
    per_sample = F.cross_entropy(logits.float(), y, reduction="none")
    return per_sample.mean() + aux.loss([m.float() for m in maps], per_sample, epoch)


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, normalize: Normalizer,
                   batch_size: int = EVAL_BATCH_SIZE, execution: Execution = FP32_CPU) -> torch.Tensor:
    """Logits in eval mode, no augmentation, no gradients, in large batches."""
    model.eval()
    with execution.autocast():
        return torch.cat([model(execution.prepare_input(normalize(chunk))).float()
                          for chunk in images.split(batch_size)])


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, normalize: Normalizer,
             num_classes: int, execution: Execution = FP32_CPU) -> dict[str, float]:
    """Test accuracy (a fraction) and macro-F1."""
    from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

    preds = predict_logits(model, images, normalize, execution=execution).argmax(dim=1)
    return {
        "accuracy": float(multiclass_accuracy(preds, labels, num_classes, average="micro")),
        "macro_f1": float(multiclass_f1_score(preds, labels, num_classes, average="macro")),
    }
