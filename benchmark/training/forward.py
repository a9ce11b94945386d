"""Batched evaluation passes: a network over many images in large chunks, without gradients.

One home for the chunking, autocast and memory format of every evaluation-mode pass (test logits,
frozen features, the pool's probabilities and embeddings); the callers set the network's mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from benchmark.models.base import Backbone
from benchmark.training.execution import FP32_CPU, Execution

EVAL_BATCH_SIZE = 1024

Output = TypeVar("Output")


@torch.no_grad()
def batched_forward(forward: Callable[[torch.Tensor], Output], images: torch.Tensor,
                    normalize: Callable[[torch.Tensor], torch.Tensor], execution: Execution = FP32_CPU,
                    index: torch.Tensor | None = None, batch_size: int = EVAL_BATCH_SIZE) -> list[Output]:
    """``forward`` of each normalised chunk of ``images`` (or of ``images[index]``, chunked by index), under
    the execution's autocast and memory format; one output per chunk, in order."""
    chunks = images.split(batch_size) if index is None else [images[i] for i in index.split(batch_size)]
    outputs = []
    for chunk in chunks:
        with execution.autocast():
            outputs.append(forward(execution.prepare_input(normalize(chunk))))
    return outputs


def predict_logits(model: nn.Module, images: torch.Tensor, normalize: Callable[[torch.Tensor], torch.Tensor],
                   batch_size: int = EVAL_BATCH_SIZE, execution: Execution = FP32_CPU) -> torch.Tensor:
    """float32 logits in eval mode, no augmentation, no gradients, in large batches."""
    model.eval()
    return torch.cat(batched_forward(lambda x: model(x).float(), images, normalize, execution,
                                     batch_size=batch_size))


def frozen_features(model: Backbone, images: torch.Tensor, normalize: Callable[[torch.Tensor], torch.Tensor],
                    execution: Execution = FP32_CPU, batch_size: int = EVAL_BATCH_SIZE) -> torch.Tensor:
    """float32 embeddings (``model.features``) of uint8 images in eval mode, without gradients."""
    model.eval()
    return torch.cat(batched_forward(lambda x: model.features(x).float(), images, normalize, execution,
                                     batch_size=batch_size))
