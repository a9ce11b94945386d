"""Ent-GradNorm: label the samples whose output entropy has the largest gradient norm.

Wang et al. 2022 ("Boosting Active Learning via Improving Test Performance"), as
used by seed 002 (Eqs. 6-9): for each unlabeled x_i, treat the entropy
H(p(y|x_i)) of the main model's softmax output as a loss, take its gradient with
respect to all of the model's parameters, and rank by the Frobenius norm
g_i = ||dH_i / dw||_F, highest first. The model is in eval mode (batch norm uses
its running statistics, so each sample's gradient is its own) and is not updated.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from benchmark.strategies.base import SelectionContext, Strategy, top_k

# per-sample gradients are materialised one chunk at a time: chunk x parameters floats
GRADIENT_MEMORY_BYTES = 256 * 2**20


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    log_p = F.log_softmax(logits.float(), dim=-1)
    return -(log_p.exp() * log_p).sum(dim=-1)


def entropy_gradient_norms(model: nn.Module, inputs: torch.Tensor,
                           chunk_size: int | None = None) -> torch.Tensor:
    """||d entropy(model(x_i)) / d params||_F for every row of ``inputs`` (already normalised)."""
    from torch.func import functional_call, grad, vmap

    model.eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())
    n_params = sum(p.numel() for p in params.values())
    chunk = chunk_size or max(1, GRADIENT_MEMORY_BYTES // (4 * n_params))

    def sample_entropy(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return _entropy(functional_call(model, (p, buffers), (x.unsqueeze(0),)))[0]

    per_sample_grad = vmap(grad(sample_entropy), in_dims=(None, 0))
    norms = []
    for xb in inputs.split(chunk):
        grads = per_sample_grad(params, xb)
        squared = sum(g.flatten(1).pow(2).sum(dim=1) for g in grads.values())
        norms.append(torch.sqrt(squared))
    return torch.cat(norms) if norms else torch.empty(0, device=inputs.device)


class EntropyGradNorm(Strategy):
    name = "ent_gradnorm"

    def __init__(self, chunk_size: int | None = None) -> None:
        self.chunk_size = chunk_size

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        pool = ctx.require_pool()
        norms: list[torch.Tensor] = []
        normalize: Callable[[torch.Tensor], torch.Tensor] = pool.normalize
        for index in pool.unlabeled_index.split(4096):  # bound the normalised copy of the pool
            norms.append(entropy_gradient_norms(pool.network, normalize(pool.images[index]), self.chunk_size))
        scores = torch.cat(norms).cpu().numpy() if norms else np.empty(0)
        return ctx.unlabeled[top_k(scores, budget)]
