"""The one interface of the auxiliary modules trained jointly with the backbone (``training.aux``).

Loss prediction and the discriminator (:mod:`benchmark.training.aux`) and WAAL's Wasserstein critic
(:mod:`benchmark.training.wasserstein`) each say what a training step's loss is, which unlabeled
images they need per round, how they score the unlabeled pool for their strategy, and what their
checkpoint state is; the runner, the trainer and the pool model only talk to this interface.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch
from torch import nn


@dataclass(frozen=True)
class TrainingStep:
    """What a module needs of the training loop for one mini-batch besides the labeled batch itself."""

    prepare: Callable[[torch.Tensor], torch.Tensor]  # a batch -> the network's input (normalised, memory format)
    augment: Callable[[torch.Tensor], torch.Tensor]  # the training augmentation of a uint8 batch
    generator: torch.Generator
    epoch: int  # 0-based


class PoolView(Protocol):
    """What a module reads of the pool model (:class:`benchmark.strategies.pool_model.PoolModel`)."""

    network: nn.Module
    images: torch.Tensor  # the whole pool, uint8
    normalize: Callable[[torch.Tensor], torch.Tensor]
    unlabeled_index: torch.Tensor

    @property
    def device(self) -> torch.device: ...

    def unlabeled_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(softmax probabilities, penultimate embeddings) of the unlabeled pool, cached."""
        ...


class JointModule(Protocol):
    """An auxiliary module trained jointly with the backbone, attachable to any strategy's training."""

    kind: ClassVar[str]  # its training.aux value
    pairs_unlabeled: ClassVar[bool]  # each step contrasts the labeled batch with unlabeled images
    module: nn.Module
    unlabeled_images: torch.Tensor | None  # the round's unlabeled pool (uint8) when it pairs them

    def start_round(self, unlabeled_images: torch.Tensor | None, n_labeled: int) -> None:
        """Take the round's unlabeled images and labeled-set size (used only by modules that pair them)."""
        ...

    def training_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: TrainingStep) -> torch.Tensor:
        """The loss of one augmented labeled mini-batch: the classifier's cross-entropy plus the module's
        term (its own forward pass, since each module reads different parts of the network)."""
        ...

    def unlabeled_scores(self, pool: PoolView) -> torch.Tensor:
        """The module's score of every unlabeled sample of ``pool``, rows as ``pool.unlabeled_index``."""
        ...

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The module's weights, for warm starts and checkpoints."""
        ...

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...
