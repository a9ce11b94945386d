"""WAAL's joint training (Shui et al. 2020, "Deep Active Learning: Unified and Principled Method for Query
and Training", AISTATS; seed 001 sections 2 and 5 call it WAAL): a Wasserstein critic on the shared
backbone's penultimate embedding, trained against the backbone in a min-max game on labeled and
unlabeled batches.

With critic ``D`` (an MLP ending in a sigmoid, as in the official code's ``*_dis`` networks) and the
re-weighting ``gamma = |L| / |U|`` of the labeled part (the paper's unbalanced distribution matching;
the official code's ``gamma_ratio``), the Wasserstein estimate of one step is::

    W = mean_U D(z_u) - gamma * mean_L D(z_l)

Each training step (labeled batch + an equally large unlabeled batch through the backbone together):

1. max step: the critic ascends ``alpha * (W - mu * GP)`` on the *detached* embeddings (``critic_steps``
   SGD steps of its own optimizer; WGAN-GP's gradient penalty ``GP`` on random interpolates between
   unlabeled and labeled embeddings, plus the embeddings themselves, weight ``mu = 2``);
2. min step: the backbone and its classifier descend ``CE(labeled) + alpha * W`` with the critic frozen
   (the trainer's own optimizer; the critic's parameters get no gradient there).

So the critic learns to score unlabeled embeddings high and labeled ones low, and the backbone learns
to make the two indistinguishable. ``waal`` then labels the samples the critic scores most "unlabeled"
that are also uncertain (:mod:`benchmark.strategies.waal`).

Hyper-parameters (official code, github.com/cjshui/WAAL: ``Test.py``, ``model.py``,
``query_strategies/wasserstein_adversarial.py``): ``alpha = 2e-3`` (``training.aux_weight`` auto-resolves
to it), gradient-penalty weight 2 in the critic's step, 1 critic step per batch, critic 50 hidden units
with dropout 0.5. The official model step also adds ``5 * alpha * GP`` computed on detached embeddings
through the frozen critic: a term without gradient, left out here. The official critic step subtracts
the penalty (``-alpha * W - 2 * alpha * GP`` is minimised, i.e. the critic *maximises* the penalty);
alb adds it, as WGAN-GP (Gulrajani et al. 2017) and the paper's Lipschitz constraint require.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from benchmark.training.aux import sample_unlabeled
from benchmark.training.joint import PoolView, TrainingStep
from benchmark.training.loop import optimizer_step

GP_WEIGHT = 2.0  # gradient penalty in the critic's step (official wasserstein_adversarial.py: 2)
CRITIC_STEPS = 1  # critic updates per batch (official: `for _ in range(1)`)
CRITIC_HIDDEN = 50  # official model.py: Linear(features, 50) -> ReLU -> dropout -> Linear(50, 1) -> sigmoid
CRITIC_DROPOUT = 0.5  # F.dropout's default p in the official critic


class WassersteinCritic(nn.Module):
    """WAAL's critic on penultimate embeddings: one hidden layer, dropout, a sigmoid output in (0, 1)."""

    def __init__(self, embedding_dim: int, hidden: int = CRITIC_HIDDEN, dropout: float = CRITIC_DROPOUT) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(embedding_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, 1), nn.Sigmoid())

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net(embeddings).squeeze(1)


def wasserstein_estimate(critic_unlabeled: torch.Tensor, critic_labeled: torch.Tensor,
                         gamma: float) -> torch.Tensor:
    """WAAL's re-weighted Wasserstein estimate mean(D(z_u)) - gamma * mean(D(z_l)), gamma = |L| / |U|."""
    return critic_unlabeled.mean() - gamma * critic_labeled.mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], a: torch.Tensor, b: torch.Tensor,
                     mix: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's penalty mean((||grad_z D(z)||_2 - 1)^2) over the interpolates ``a + mix * (b - a)`` (``mix``:
    one weight in [0, 1] per row, shape (n, 1)) and the end points ``a`` and ``b`` themselves, as the
    official WAAL code does. Differentiable in the critic's parameters (``create_graph``); ``a`` and ``b``
    are treated as constants. The critic must act on each row independently (no batch norm)."""
    if a.shape != b.shape or mix.shape != (a.shape[0], 1):
        raise ValueError(f"gradient_penalty needs a and b of one shape and mix of shape (n, 1); got "
                         f"{tuple(a.shape)}, {tuple(b.shape)}, {tuple(mix.shape)}")
    a, b = a.detach(), b.detach()
    points = torch.cat([a + mix * (b - a), a, b]).requires_grad_(True)
    (grads,) = torch.autograd.grad(critic(points).sum(), points, create_graph=True)
    return ((grads.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


@dataclass
class WassersteinTraining:
    """A critic sharing the backbone, its optimizer, and the unlabeled images it contrasts with (a
    :class:`~benchmark.training.joint.JointModule`)."""

    module: WassersteinCritic
    alpha: float
    optimizer: torch.optim.Optimizer  # the critic's own (the official code gives it the model's settings)
    gp_weight: float = GP_WEIGHT
    critic_steps: int = CRITIC_STEPS
    unlabeled_images: torch.Tensor | None = None  # uint8, set by the runner each round
    n_labeled: int | None = None  # |L|, set by the runner each round (gamma = |L| / |U|)

    kind = "wasserstein"
    pairs_unlabeled = True

    def start_round(self, unlabeled_images: torch.Tensor | None, n_labeled: int) -> None:
        self.unlabeled_images, self.n_labeled = unlabeled_images, n_labeled

    def training_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: TrainingStep) -> torch.Tensor:
        """The min-max step on the labeled batch and as many unlabeled images through the backbone together:
        the critic's own update first (max), then the backbone's loss (min)."""
        n = x.shape[0]
        xu = step.augment(self.unlabeled_batch(n, step.generator))
        logits, embeddings = model.forward_with_embedding(step.prepare(torch.cat([x, xu])))
        self.critic_step(embeddings, n, step.generator)
        return F.cross_entropy(logits[:n], y) + self.adversarial_loss(embeddings.float(), n)

    def unlabeled_scores(self, pool: PoolView) -> torch.Tensor:
        """D(z) of every unlabeled sample, from the pool's cached embeddings."""
        return self.critic_scores(pool.unlabeled_outputs()[1])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)

    @property
    def gamma(self) -> float:
        if self.unlabeled_images is None or self.unlabeled_images.shape[0] == 0 or self.n_labeled is None:
            raise RuntimeError("wasserstein training needs the unlabeled images and the labeled count of the "
                               "round (set unlabeled_images and n_labeled)")
        return self.n_labeled / self.unlabeled_images.shape[0]

    def unlabeled_batch(self, size: int, generator: torch.Generator) -> torch.Tensor:
        return sample_unlabeled(self.unlabeled_images, size, generator, self.kind)

    def critic_step(self, embeddings: torch.Tensor, n_labeled: int, generator: torch.Generator) -> None:
        """The max step: ``critic_steps`` updates of the critic on fixed embeddings (labeled rows first,
        then as many unlabeled rows), in fp32 outside autocast."""
        z = embeddings.detach().float()
        z_l, z_u = z[:n_labeled], z[n_labeled:]
        if z_u.shape[0] != n_labeled:
            raise ValueError(f"critic_step pairs labeled and unlabeled rows: got {n_labeled} labeled and "
                             f"{z_u.shape[0]} unlabeled")
        gamma = self.gamma
        with torch.autocast(device_type=z.device.type, enabled=False):
            for _ in range(self.critic_steps):
                mix = torch.rand(n_labeled, 1, generator=generator, device=z.device)
                estimate = wasserstein_estimate(self.module(z_u), self.module(z_l), gamma)
                penalty = gradient_penalty(self.module, z_u, z_l, mix)
                loss = self.alpha * (-estimate + self.gp_weight * penalty)
                optimizer_step(loss, self.optimizer)

    def adversarial_loss(self, embeddings: torch.Tensor, n_labeled: int) -> torch.Tensor:
        """The min step's term ``alpha * W`` with the critic frozen: gradients reach the embeddings (the
        backbone) but never the critic's parameters."""
        frozen = {name: p.detach() for name, p in self.module.named_parameters()}
        scores = torch.func.functional_call(self.module, frozen, (embeddings,))
        return self.alpha * wasserstein_estimate(scores[n_labeled:], scores[:n_labeled], self.gamma)

    @torch.no_grad()
    def critic_scores(self, embeddings: torch.Tensor) -> torch.Tensor:
        """D(z) in eval mode (no dropout): high = looks unlabeled, far from the labeled distribution."""
        self.module.eval()
        return self.module(embeddings)
