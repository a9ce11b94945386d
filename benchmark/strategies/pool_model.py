"""The current network as strategies see it: every forward pass over the pool, computed once per round.

Everything runs in eval mode without augmentation, in large batches without
gradients, on the training device; results stay there as tensors so that
selection algorithms can run on the GPU too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from benchmark.seeding import derive_seed
from benchmark.training.execution import FP32_CPU, Execution
from benchmark.training.forward import batched_forward

if TYPE_CHECKING:
    from benchmark.training.joint import JointModule


def dropout_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Dropout | nn.Dropout1d | nn.Dropout2d)]


class PoolModel:
    """Probabilities and penultimate embeddings of the unlabeled and labeled pool, MC-dropout passes."""

    def __init__(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                 normalize: Callable[[torch.Tensor], torch.Tensor], unlabeled: torch.Tensor,
                 labeled: torch.Tensor, seed: int, aux: JointModule | None = None,
                 execution: Execution | None = None) -> None:
        self.network, self.images, self.targets, self.normalize = model, images, targets, normalize
        self.aux = aux
        self.execution = execution or FP32_CPU
        self.unlabeled_index, self.labeled_index = unlabeled, labeled
        self.seed = seed
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._mc: dict[int, torch.Tensor] = {}
        self._module_scores: dict[str, torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        return self.images.device

    def _outputs(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward passes in the network's current mode (the callers set it)."""
        # autocast covers the network only: the strategies' own maths stays in fp32
        parts = batched_forward(self.network.forward_with_embedding, self.images, self.normalize, self.execution,
                                index=index)
        if not parts:
            c = self.network.head.out_features
            return torch.empty(0, c, device=self.device), torch.empty(0, self.network.embedding_dim,
                                                                      device=self.device)
        return (torch.cat([torch.softmax(logits.float(), dim=1) for logits, _ in parts]),
                torch.cat([emb.float() for _, emb in parts]))

    def unlabeled_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(softmax probabilities, penultimate embeddings) of the unlabeled pool, rows as ``unlabeled``."""
        if "unlabeled" not in self._cache:
            self.network.eval()
            self._cache["unlabeled"] = self._outputs(self.unlabeled_index)
        return self._cache["unlabeled"]

    def labeled_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        if "labeled" not in self._cache:
            self.network.eval()
            self._cache["labeled"] = self._outputs(self.labeled_index)
        return self._cache["labeled"]

    def labeled_targets(self) -> torch.Tensor:
        return self.targets[self.labeled_index]

    @torch.no_grad()
    def mc_dropout_probs(self, passes: int) -> torch.Tensor:
        """(passes, n_unlabeled, classes) softmax outputs with only the dropout layers stochastic
        (batch norm and everything else in eval mode), as MC dropout prescribes (Gal et al. 2017)."""
        if passes not in self._mc:
            layers = dropout_layers(self.network)
            if not layers:
                raise RuntimeError("MC dropout needs dropout layers; set training.head_dropout > 0")
            self.network.eval()
            for layer in layers:
                layer.train()
            torch.manual_seed(derive_seed(self.seed, int(self.labeled_index.numel()), "mc_dropout"))
            try:
                self._mc[passes] = torch.stack([self._outputs(self.unlabeled_index)[0] for _ in range(passes)])
            finally:
                self.network.eval()
        return self._mc[passes]

    def module_scores(self, kind: str, needed_by: str) -> torch.Tensor:
        """The jointly trained module's score of every unlabeled sample (cached), rows as ``unlabeled``;
        ``kind`` is the module (training.aux) that ``needed_by`` selects with."""
        if self.aux is None or self.aux.kind != kind:
            raise RuntimeError(f"{needed_by} needs the jointly trained {kind} module: training.aux: {kind}")
        if kind not in self._module_scores:
            self._module_scores[kind] = self.aux.unlabeled_scores(self)
        return self._module_scores[kind]

    def discriminator_labeled_probability(self) -> torch.Tensor:
        """P(labeled) of every unlabeled sample by the jointly trained discriminator (training.aux:
        discriminator), from the cached embeddings."""
        return self.module_scores("discriminator", "the discriminator's P(labeled)")

    def predicted_losses(self) -> torch.Tensor:
        """LL4AL's predicted loss of every unlabeled sample (needs training.aux: loss_prediction)."""
        return self.module_scores("loss_prediction", "the predicted losses")

    def critic_scores(self) -> torch.Tensor:
        """WAAL's critic score D(z) of every unlabeled sample (needs training.aux: wasserstein)."""
        return self.module_scores("wasserstein", "waal")
