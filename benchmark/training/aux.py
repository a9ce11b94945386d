"""Auxiliary modules trained jointly with the backbone, attachable to any strategy's training.

``discriminator``: JLS-style joint training (Caramalau et al. 2021, as seed 001 section 6 applies it
to every strategy): an MLP on the backbone's penultimate embedding learns to tell labeled (1) from
unlabeled (0) samples; each step draws an unlabeled batch as large as the labeled one, both pass
through the shared backbone together, and the binary cross-entropy (weight ``aux_weight``) is added
to the classification loss, so unlabeled data shapes the backbone. ``jls`` selects the samples the
discriminator most confidently calls unlabeled.

``loss_prediction``: the loss-prediction module of LL4AL (Yoo & Kweon 2019, "Learning Loss for
Active Learning"). It reads the backbone's intermediate feature maps (``tap_points``), global-
average-pools each, maps it through a linear layer + ReLU (128 units), concatenates and predicts
one scalar: the sample's loss. It is trained with a margin ranking loss on pairs of the batch
(the sign of the true loss difference, margin 1), weighted by lambda = 1, and its input is
detached from the backbone after 60 % of the epochs (epoch 120 of 200 in the paper). Seed 001
(sections 5-6) shows that this joint training, not the selection, is where LL4AL's gain comes
from, hence ``training.aux`` works with every strategy; ``learning_loss`` then selects by the
*highest* predicted loss and ``lplgrad`` (seed 002) by the entropy gradient norm.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from benchmark.models.base import Backbone
from benchmark.training.forward import batched_forward
from benchmark.training.joint import PoolView, TrainingStep

HIDDEN_UNITS = 128


class FeatureTaps:
    """Captures the outputs of a backbone's tap points during forward passes."""

    def __init__(self, model: Backbone) -> None:
        self.points = model.tap_points()
        self.maps: list[torch.Tensor] = []

    @contextlib.contextmanager
    def active(self) -> Iterator[list[torch.Tensor]]:
        self.maps.clear()
        handles = [p.register_forward_hook(lambda _m, _i, out: self.maps.append(out)) for p in self.points]
        try:
            yield self.maps
        finally:
            for handle in handles:
                handle.remove()


class LossPredictionModule(nn.Module):
    def __init__(self, channels: list[int], hidden: int = HIDDEN_UNITS) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Linear(c, hidden) for c in channels)
        self.out = nn.Linear(hidden * len(channels), 1)

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        pooled = [F.relu(fc(torch.flatten(F.adaptive_avg_pool2d(m, 1), 1)))
                  for fc, m in zip(self.branches, maps, strict=True)]
        return self.out(torch.cat(pooled, dim=1)).squeeze(1)


def build_loss_prediction(model: Backbone, example: torch.Tensor) -> LossPredictionModule:
    """Size the module's branches from one forward pass of ``example`` (a normalised batch)."""
    taps = FeatureTaps(model)
    was_training = model.training
    model.eval()
    with torch.no_grad(), taps.active() as maps:
        model(example[:1])
    model.train(was_training)
    return LossPredictionModule([int(m.shape[1]) for m in maps]).to(example.device)


def ranking_loss(predicted: torch.Tensor, target: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """LL4AL's loss-prediction loss: pair sample i with sample B-1-i; for each pair, hinge on the
    predicted difference having the sign of the true loss difference:
    mean(max(0, margin - sign(l_i - l_j) * (p_i - p_j))). A middle sample of an odd batch is unpaired."""
    half = predicted.shape[0] // 2
    if half == 0:
        return predicted.sum() * 0.0
    diff_pred = predicted[:half] - predicted.flip(0)[:half]
    diff_true = (target[:half] - target.flip(0)[:half]).detach()
    sign = torch.where(diff_true > 0, 1.0, -1.0)
    return F.relu(margin - sign * diff_pred).mean()


@dataclass
class AuxTraining:
    """A loss-prediction module attached to a backbone, with its training settings (a
    :class:`~benchmark.training.joint.JointModule`)."""

    kind = "loss_prediction"
    pairs_unlabeled = False

    module: LossPredictionModule
    taps: FeatureTaps
    weight: float
    margin: float
    detach_epoch: int
    unlabeled_images: torch.Tensor | None = None  # never needed

    def start_round(self, unlabeled_images: torch.Tensor | None, n_labeled: int) -> None:
        pass

    def training_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: TrainingStep) -> torch.Tensor:
        with self.taps.active() as maps:
            logits = model(step.prepare(x))
        per_sample = F.cross_entropy(logits.float(), y, reduction="none")
        return per_sample.mean() + self.loss([m.float() for m in maps], per_sample, step.epoch)

    def unlabeled_scores(self, pool: PoolView) -> torch.Tensor:
        """LL4AL's predicted loss of every unlabeled sample (plain fp32: the pass runs outside autocast)."""
        parts = batched_forward(lambda x: self.predict(pool.network, x), pool.images, pool.normalize,
                                index=pool.unlabeled_index)
        return torch.cat(parts) if parts else torch.empty(0, device=pool.device)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)

    def loss(self, maps: list[torch.Tensor], per_sample_loss: torch.Tensor, epoch: int) -> torch.Tensor:
        if epoch >= self.detach_epoch:  # stop the ranking loss from shaping the backbone late in training
            maps = [m.detach() for m in maps]
        return self.weight * ranking_loss(self.module(maps), per_sample_loss, self.margin)

    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """Predicted losses of a normalised batch, everything in eval mode."""
        model.eval()
        self.module.eval()
        with self.taps.active() as maps:
            model(inputs)
        return self.module(maps)


class DiscriminatorModule(nn.Module):
    """Labeled-vs-unlabeled classifier on penultimate embeddings (logit of "labeled")."""

    def __init__(self, embedding_dim: int, hidden: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(embedding_dim, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net(embeddings).squeeze(1)


def sample_unlabeled(images: torch.Tensor | None, size: int, generator: torch.Generator, kind: str) -> torch.Tensor:
    """``size`` unlabeled images drawn uniformly with replacement, for a module contrasting them with a
    labeled batch (JLS's discriminator, WAAL's critic)."""
    if images is None or images.shape[0] == 0:
        raise RuntimeError(f"{kind} training needs the unlabeled images of the round")
    pick = torch.randint(0, images.shape[0], (size,), generator=generator, device=images.device)
    return images[pick]


@dataclass
class DiscriminatorTraining:
    """A discriminator sharing the backbone, and the unlabeled images it contrasts with (a
    :class:`~benchmark.training.joint.JointModule`)."""

    module: DiscriminatorModule
    weight: float
    unlabeled_images: torch.Tensor | None = None  # uint8, set by the runner each round

    kind = "discriminator"
    pairs_unlabeled = True

    def start_round(self, unlabeled_images: torch.Tensor | None, n_labeled: int) -> None:
        self.unlabeled_images = unlabeled_images

    def training_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: TrainingStep) -> torch.Tensor:
        """One forward pass of the labeled batch and as many unlabeled images, contrasted on the embedding."""
        n = x.shape[0]
        xu = step.augment(self.unlabeled_batch(n, step.generator))
        logits, embeddings = model.forward_with_embedding(step.prepare(torch.cat([x, xu])))
        return F.cross_entropy(logits[:n], y) + self.loss(embeddings.float(), n)

    def unlabeled_scores(self, pool: PoolView) -> torch.Tensor:
        """P(labeled) of every unlabeled sample, from the pool's cached embeddings."""
        return self.labeled_probability(pool.unlabeled_outputs()[1])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)

    def unlabeled_batch(self, size: int, generator: torch.Generator) -> torch.Tensor:
        return sample_unlabeled(self.unlabeled_images, size, generator, self.kind)

    def loss(self, embeddings: torch.Tensor, n_labeled: int) -> torch.Tensor:
        """BCE of labeled (first ``n_labeled`` rows) = 1 vs unlabeled = 0."""
        target = torch.zeros(embeddings.shape[0], device=embeddings.device)
        target[:n_labeled] = 1.0
        return self.weight * F.binary_cross_entropy_with_logits(self.module(embeddings), target)

    @torch.no_grad()
    def labeled_probability(self, embeddings: torch.Tensor) -> torch.Tensor:
        self.module.eval()
        return torch.sigmoid(self.module(embeddings))
