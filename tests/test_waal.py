"""WAAL (Shui et al. 2020): the query score, the critic's maths, joint min-max training, a real digits cell."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import write_suite
from torch import nn

from benchmark import cli
from benchmark.config import CellConfig
from benchmark.models.base import build_backbone
from benchmark.store import load_results
from benchmark.strategies.base import SelectionContext
from benchmark.strategies.pool_model import PoolModel
from benchmark.strategies.waal import WAAL, loss_upper_bound, waal_scores
from benchmark.training.wasserstein import (
    WassersteinCritic,
    WassersteinTraining,
    gradient_penalty,
    wasserstein_estimate,
)


def _config(strategy: str, **training: object) -> CellConfig:
    return CellConfig.model_validate({"dataset": "digits", "backbone": "small_cnn", "strategy": strategy,
                                      "budget": {"initial": 10, "query": 10, "rounds": 1},
                                      "training": {"epochs": 10, **training}})


def test_loss_upper_bound_and_score_by_hand() -> None:
    probs = torch.tensor([[0.5, 0.5], [0.9, 0.1]], dtype=torch.float64)
    # row 0: log p = (-ln 2, -ln 2): L2 = sqrt(2) ln 2, L1 = 2 ln 2
    bound0 = 0.5 * math.sqrt(2) * math.log(2) + 0.5 * 2 * math.log(2)
    # row 1: log p = (ln 0.9, ln 0.1)
    l2 = math.sqrt(math.log(0.9) ** 2 + math.log(0.1) ** 2)
    l1 = -math.log(0.9) - math.log(0.1)
    bound1 = 0.5 * l2 + 0.5 * l1
    assert loss_upper_bound(probs).tolist() == pytest.approx([bound0, bound1])
    critic = torch.tensor([0.2, 0.9], dtype=torch.float64)
    assert waal_scores(probs, critic, 10.0).tolist() == pytest.approx([2.0 - bound0, 9.0 - bound1])
    assert waal_scores(probs, critic, 0.0).tolist() == pytest.approx([-bound0, -bound1])


def test_bound_is_smallest_for_the_uniform_prediction() -> None:
    # the official query takes the *smallest* bound: the most uncertain prediction
    probs = torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.4, 0.2, 0.2, 0.2], [0.7, 0.1, 0.1, 0.1], [1.0, 0.0, 0.0, 0.0]])
    bound = loss_upper_bound(probs)
    assert torch.isfinite(bound).all()  # log(0) is clamped
    assert bound.argsort().tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="rows of probabilities"):
        waal_scores(probs, torch.zeros(3))


class _FakeAux:
    kind = "wasserstein"

    def __init__(self, scores: torch.Tensor) -> None:
        self.scores = scores

    def unlabeled_scores(self, pool: PoolModel) -> torch.Tensor:
        return self.scores


class _FakePool(PoolModel):
    """The pool model's own module checks, with given probabilities instead of forward passes."""

    def __init__(self, probs: torch.Tensor, aux: Any) -> None:
        self.probs, self.aux, self._module_scores = probs, aux, {}

    def unlabeled_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.probs, torch.zeros(self.probs.shape[0], 3)


def test_waal_trades_uncertainty_for_the_critics_diversity() -> None:
    probs = torch.tensor([[0.5, 0.5], [0.99, 0.01], [0.6, 0.4], [0.95, 0.05]])
    critic = torch.tensor([0.1, 0.9, 0.1, 0.8])
    unlabeled = np.array([20, 21, 22, 23])

    def ctx(aux: Any) -> SelectionContext:
        return SelectionContext(unlabeled, np.array([0]), np.random.default_rng(0),
                                pool=_FakePool(probs, aux))  # type: ignore[arg-type]

    # selection 0: uncertainty only, the most uniform predictions first
    assert WAAL(selection=0.0).select(ctx(_FakeAux(critic)), 2).tolist() == [20, 22]
    # the official weight 10: the critic's "unlabeled-looking" samples win despite confident predictions
    expected = np.argsort(-(10 * critic - loss_upper_bound(probs)).numpy(), kind="stable")[:2]
    # (0.95, 0.05) has the smaller bound than (0.99, 0.01): 8 - 3.02 beats 9 - 4.61
    assert WAAL().select(ctx(_FakeAux(critic)), 2).tolist() == unlabeled[expected].tolist() == [23, 21]
    with pytest.raises(RuntimeError, match=r"training\.aux: wasserstein"):
        WAAL().select(ctx(None), 2)
    with pytest.raises(ValueError, match="selection"):
        WAAL(selection=-1.0)


def test_wasserstein_estimate_by_hand() -> None:
    unlabeled, labeled = torch.tensor([0.8, 0.6]), torch.tensor([0.2, 0.4])
    assert wasserstein_estimate(unlabeled, labeled, gamma=0.5).item() == pytest.approx(0.7 - 0.5 * 0.3)


def test_gradient_penalty_of_a_linear_critic_by_hand() -> None:
    critic = nn.Linear(2, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 4.0]]))
        critic.bias.fill_(1.0)
    a, b = torch.randn(5, 2), torch.randn(5, 2)
    gp = gradient_penalty(lambda z: critic(z).squeeze(1), a, b, torch.rand(5, 1))
    assert gp.item() == pytest.approx((5.0 - 1.0) ** 2)  # the gradient is w everywhere, |w| = 5
    # differentiable in the critic: d(|w| - 1)^2 / dw = 2 (|w| - 1) w / |w|
    gp.backward()
    assert critic.weight.grad is not None
    assert critic.weight.grad.squeeze(0).tolist() == pytest.approx([2 * 4 * 3 / 5, 2 * 4 * 4 / 5])


def test_gradient_penalty_on_interpolates_and_end_points() -> None:
    def critic(z: torch.Tensor) -> torch.Tensor:
        return 0.5 * (z**2).sum(dim=1)  # gradient z: the penalty reads the points' norms

    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    gp = gradient_penalty(critic, a, b, torch.tensor([[0.5]]))  # interpolate (0.5, 1)
    assert gp.item() == pytest.approx(((math.sqrt(1.25) - 1) ** 2 + 0.0 + 1.0) / 3)
    with pytest.raises(ValueError, match="mix of shape"):
        gradient_penalty(critic, a, b, torch.tensor([0.5]))


def test_config_attaches_the_critic_for_waal() -> None:
    waal = _config("waal").training
    assert (waal.aux, waal.aux_weight) == ("wasserstein", pytest.approx(2e-3))
    assert _config("jls").training.aux_weight == 1.0  # the other modules keep lambda = 1
    assert _config("entropy", aux="wasserstein", aux_weight=0.5).training.aux_weight == 0.5
    with pytest.raises(ValueError, match="selects with the wasserstein module"):
        _config("waal", aux="discriminator")


def _training(model: nn.Module, alpha: float = 2e-3, lr: float = 1e-3) -> WassersteinTraining:
    critic = WassersteinCritic(model.embedding_dim)  # type: ignore[arg-type]
    return WassersteinTraining(critic, alpha, torch.optim.Adam(critic.parameters(), lr=lr))


def test_min_max_gradients_reach_the_right_players() -> None:
    torch.manual_seed(0)
    model = build_backbone("small_cnn", 10, 1)
    aux = _training(model, alpha=1.0, lr=0.1)
    aux.unlabeled_images, aux.n_labeled = torch.zeros(8, 1, 8, 8, dtype=torch.uint8), 4
    assert aux.gamma == 0.5
    _, embeddings = model.forward_with_embedding(torch.randn(8, 1, 8, 8))
    before = [p.detach().clone() for p in aux.module.parameters()]
    aux.critic_step(embeddings, 4, torch.Generator().manual_seed(0))  # max: the critic moves ...
    assert any(not torch.equal(b, p) for b, p in zip(before, aux.module.parameters(), strict=True))
    assert all(p.grad is None for p in model.parameters())  # ... on detached embeddings
    aux.module.zero_grad(set_to_none=True)
    aux.adversarial_loss(embeddings, 4).backward()  # min: the backbone gets the gradient, not the critic
    assert all(p.grad is None for p in aux.module.parameters())
    assert sum(float(p.grad.abs().sum()) for p in model.parameters() if p.grad is not None) > 0


def test_joint_training_moves_both_and_the_critic_scores_unlabeled_higher(tmp_path: Path) -> None:
    """The official sign convention: the critic maximises mean D(unlabeled) - gamma mean D(labeled), so after
    training on an easy split (labeled digits 0-4, unlabeled digits 5-9) it scores unlabeled samples higher.
    Equal set sizes (gamma = 1): with gamma < 1 pushing the labeled scores down is worth only gamma to it."""
    from benchmark.data.loading import load_dataset
    from benchmark.training.augment import Normalizer
    from benchmark.training.loop import AugmentationSpec
    from benchmark.training.trainer import train

    torch.set_num_threads(1)
    data = load_dataset("digits", tmp_path)
    low = torch.nonzero(data.train_y < 5).squeeze(1)
    high = torch.nonzero(data.train_y >= 5).squeeze(1)
    labeled, unlabeled = low[:100], high[:100]
    torch.manual_seed(0)
    model = build_backbone("small_cnn", 10, 1)
    aux = _training(model, lr=1e-2)
    aux.unlabeled_images, aux.n_labeled = data.train_x[unlabeled], len(labeled)
    backbone_before = [p.detach().clone() for p in model.parameters()]
    critic_before = [p.detach().clone() for p in aux.module.parameters()]
    norm = Normalizer(data.mean, data.std, torch.device("cpu"))
    cfg = _config("waal", epochs=15, batch_size=20, optimizer={"name": "adam", "lr": 1e-3}).training
    result = train(model, data.train_x[labeled], data.train_y[labeled], cfg, norm, AugmentationSpec(1, False),
                   torch.Generator().manual_seed(0), aux=aux)
    assert math.isfinite(result.final_loss)
    assert any(not torch.equal(b, p) for b, p in zip(backbone_before, model.parameters(), strict=True))
    assert any(not torch.equal(b, p) for b, p in zip(critic_before, aux.module.parameters(), strict=True))
    model.eval()
    with torch.no_grad():
        on_labeled = aux.critic_scores(model.features(norm(data.train_x[labeled]))).mean()
        on_unlabeled = aux.critic_scores(model.features(norm(data.train_x[unlabeled]))).mean()
    assert on_unlabeled > on_labeled + 0.1


def test_waal_cell_runs_through_the_cli(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, "waal", """\
        defaults:
          dataset: digits
          backbone: small_cnn
          budget: {initial: 20, query: 10, rounds: 2}
          training: {epochs: 2, batch_size: 10, start: cold}
        matrix:
          strategy: [waal]
        include:
          - {strategy: entropy, training.aux: none}
          - {strategy: entropy, training.aux: wasserstein}
        """)
    assert cli.main(["run", str(suite), "--results", str(tmp_path / "a")]) == 0
    assert cli.main(["run", str(suite), "--results", str(tmp_path / "b")]) == 0
    frame = load_results(tmp_path / "a").sort_values(["strategy", "training.aux", "round"])
    assert sorted(set(zip(frame["strategy"], frame["training.aux"], strict=True))) == [
        ("entropy", "none"), ("entropy", "wasserstein"), ("waal", "wasserstein")]
    assert list(frame.groupby(["strategy", "training.aux"]).size()) == [3, 3, 3]
    entropy = frame[frame["strategy"] == "entropy"]
    # the min-max changes the training of a plain strategy from round 0 on ...
    assert list(entropy[entropy["training.aux"] == "none"]["train_loss"]) != list(
        entropy[entropy["training.aux"] == "wasserstein"]["train_loss"])
    # ... and every run is deterministic
    again = load_results(tmp_path / "b").sort_values(["strategy", "training.aux", "round"])
    assert list(again["accuracy"]) == list(frame["accuracy"])
    assert [len(s) for s in frame[frame["strategy"] == "waal"]["selected"]] == [20, 10, 10]


@pytest.mark.parametrize(("epoch_length", "steps_per_epoch"), [("labeled", 2), ("pool", 7)])
def test_pool_epochs_pair_every_unlabeled_sample_once(epoch_length: str, steps_per_epoch: int) -> None:
    from types import SimpleNamespace

    import benchmark.training.trainer as trainer
    from benchmark.config import TrainingConfig
    from benchmark.models.base import build_backbone
    from benchmark.training.augment import Normalizer

    batches: list[torch.Tensor] = []

    def fake_loss(model: torch.nn.Module, x: torch.Tensor, *args: object) -> torch.Tensor:
        batches.append(x)
        return model(x.float()).sum() * 0.0

    model = build_backbone("small_cnn", 10, 1)
    aux = SimpleNamespace(module=torch.nn.Linear(1, 1), unlabeled_images=torch.zeros(50, 1, 8, 8, dtype=torch.uint8),
                          training_loss=fake_loss)
    images = torch.randint(0, 255, (10, 1, 8, 8), dtype=torch.uint8)
    cfg = TrainingConfig.model_validate({"epochs": 2, "batch_size": 8, "augmentation": "none",
                                         "epoch_length": epoch_length})
    trainer.train_supervised(model, images, torch.arange(10), cfg, Normalizer((0.5,), (0.25,), torch.device("cpu")),
                             trainer.AugmentationSpec(1, False), torch.Generator().manual_seed(0), aux=aux)  # type: ignore[arg-type]
    # labeled: one pass over the 10 labeled (8 + 2); pool: ceil(50 / 8) full batches, L cycling
    assert len(batches) == 2 * steps_per_epoch
    if epoch_length == "pool":
        assert all(b.shape[0] == 8 for b in batches)
