"""Pieces every pre-training loop shares: optimiser, seeded head init, pool embedding, end of epoch."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from benchmark.models.base import Backbone
from benchmark.pretrain.settings import Hyper, lr_at
from benchmark.training.augment import Normalizer
from benchmark.training.execution import Execution
from benchmark.training.heads import frozen_features
from benchmark.training.loop import EpochCallback, end_epoch


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


def embed_pool(model: Backbone, images: torch.Tensor, normalize: Normalizer, execution: Execution) -> torch.Tensor:
    """Features of every image, un-augmented, in eval mode (batch norm uses its running statistics); the
    model's train / eval mode is left as it was."""
    was_training = model.training
    out = frozen_features(model, images, normalize, execution)
    model.train(was_training)
    return out


def finish_epoch(method: str, loss_sum: torch.Tensor, count: int, epoch: int, epochs: int,
                 on_epoch: EpochCallback | None) -> float:
    """Mean loss of the (0-based) ``epoch`` (one device sync); raises on NaN / inf; reports progress. The
    learning rate is set per epoch by :func:`set_lr`, so there is no scheduler to step."""
    return end_epoch(None, loss_sum, max(count, 1), epoch + 1, epochs, on_epoch, f"{method} pre-training loss",
                     "lower pretraining.lr or raise pretraining.batch_size")


def check_pool(method: str, images: torch.Tensor, min_size: int = 2) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"{method}: images must be a uint8 NCHW tensor, got {images.dtype} {tuple(images.shape)}")
    if images.shape[0] < min_size:
        raise ValueError(f"{method}: pre-training needs at least {min_size} images, got {images.shape[0]}")
