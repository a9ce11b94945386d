"""Pieces every pre-training loop shares: batches, optimiser, seeded head init, pool embedding."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from benchmark.errors import NonFiniteLossError
from benchmark.models.base import Backbone
from benchmark.pretrain.settings import Hyper, lr_at
from benchmark.training.augment import Normalizer
from benchmark.training.execution import Execution

EpochCallback = Callable[[int, int, float], None]
EMBED_BATCH_SIZE = 1024


def batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Split a permutation into mini-batches; a trailing batch of one sample (batch norm cannot train on
    it) is folded into the previous batch."""
    parts = list(order.split(batch_size))
    if len(parts) > 1 and parts[-1].numel() < 2:
        parts[-2] = torch.cat([parts[-2], parts.pop()])
    return parts


def backbone_parameters(model: Backbone) -> list[nn.Parameter]:
    """Every parameter but the supervised classifier's (``head.*``), which pre-training never uses."""
    return [p for name, p in model.named_parameters() if not name.startswith("head.")]


def make_sgd(params: Iterable[nn.Parameter], hyper: Hyper) -> torch.optim.SGD:
    return torch.optim.SGD(list(params), lr=hyper.lr, momentum=hyper.momentum, weight_decay=hyper.weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, hyper: Hyper, epoch: int) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr_at(hyper, epoch)


@torch.no_grad()
def init_linear(layer: nn.Linear, generator: torch.Generator, std: float | None = None) -> None:
    """Initialise from ``generator`` (never the global RNG): PyTorch's default uniform(+-1/sqrt(fan_in)),
    or normal(0, std) with a zero bias when ``std`` is given (DeepCluster's top layer)."""
    w = layer.weight
    if std is None:
        bound = 1.0 / math.sqrt(w.shape[1])
        w.copy_((2 * torch.rand(w.shape, generator=generator, device=w.device) - 1) * bound)
        if layer.bias is not None:
            layer.bias.copy_((2 * torch.rand(layer.bias.shape, generator=generator, device=w.device) - 1) * bound)
    else:
        w.copy_(torch.randn(w.shape, generator=generator, device=w.device) * std)
        if layer.bias is not None:
            layer.bias.zero_()


def init_linears(module: nn.Module, generator: torch.Generator) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            init_linear(layer, generator)


def embed(model: Backbone, x: torch.Tensor, normalize: Normalizer, execution: Execution) -> torch.Tensor:
    """Features of an already augmented batch (uint8 or float on the 0..255 scale), as float32."""
    with execution.autocast():
        return model.features(execution.prepare_input(normalize(x))).float()


@torch.no_grad()
def embed_pool(model: Backbone, images: torch.Tensor, normalize: Normalizer, execution: Execution) -> torch.Tensor:
    """Features of every image, un-augmented, in eval mode (batch norm uses its running statistics)."""
    was_training = model.training
    model.eval()
    out = torch.cat([embed(model, chunk, normalize, execution) for chunk in images.split(EMBED_BATCH_SIZE)])
    model.train(was_training)
    return out


def finish_epoch(method: str, loss_sum: torch.Tensor, count: int, epoch: int, epochs: int,
                 on_epoch: EpochCallback | None) -> float:
    """Mean loss of the epoch (one device sync); raises on NaN / inf; reports progress."""
    mean = float(loss_sum) / max(count, 1)
    if not math.isfinite(mean):
        raise NonFiniteLossError(f"{method} pre-training loss became {mean} in epoch {epoch + 1}; lower "
                                 "pretraining.lr or raise pretraining.batch_size")
    if on_epoch is not None:
        on_epoch(epoch + 1, epochs, mean)
    return mean


def check_pool(method: str, images: torch.Tensor, min_size: int = 2) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"{method}: images must be a uint8 NCHW tensor, got {images.dtype} {tuple(images.shape)}")
    if images.shape[0] < min_size:
        raise ValueError(f"{method}: pre-training needs at least {min_size} images, got {images.shape[0]}")
