"""LL4AL's loss-prediction module: the ranking loss, joint training with any strategy, selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_suite

from benchmark import cli
from benchmark.config import CellConfig
from benchmark.models.base import build_backbone
from benchmark.store import load_results
from benchmark.strategies.base import SelectionContext
from benchmark.strategies.learning_loss import LearningLoss
from benchmark.training.aux import AuxTraining, FeatureTaps, build_loss_prediction, ranking_loss


def test_ranking_loss_on_hand_made_pairs() -> None:
    # pairs (0, 3) and (1, 2): true losses say l0 > l3 and l1 < l2
    target = torch.tensor([3.0, 1.0, 2.0, 0.0])
    right_order = torch.tensor([5.0, 0.0, 4.0, 1.0])  # p0 - p3 = 4 (>= margin), p1 - p2 = -4
    assert ranking_loss(right_order, target).item() == pytest.approx(0.0)
    wrong_order = torch.tensor([0.0, 4.0, 0.0, 1.0])  # p0 - p3 = -1 -> 2; p1 - p2 = 4 -> 5
    assert ranking_loss(wrong_order, target).item() == pytest.approx((2.0 + 5.0) / 2)
    assert ranking_loss(torch.tensor([1.0, 2.0, 9.0]), torch.tensor([0.0, 5.0, 1.0])).item() == pytest.approx(
        max(0.0, 1.0 - (-1.0) * (1.0 - 9.0)))  # odd batch: the middle sample is unpaired
    assert ranking_loss(torch.tensor([1.0]), torch.tensor([1.0])).item() == 0.0


@pytest.mark.parametrize(("backbone", "channels", "size", "branches"),
                         [("small_cnn", 1, 8, 3), ("resnet18_cifar", 3, 32, 4)])
def test_module_reads_every_tap_point(backbone: str, channels: int, size: int, branches: int) -> None:
    torch.manual_seed(0)
    model = build_backbone(backbone, 10, channels)
    x = torch.randn(4, channels, size, size)
    module = build_loss_prediction(model, x)
    assert len(module.branches) == branches
    taps = FeatureTaps(model)
    with taps.active() as maps:
        model(x)
    assert module(maps).shape == (4,)
    assert not taps.maps or len(taps.maps) == branches  # hooks removed after the block


def test_detached_after_the_detach_epoch() -> None:
    torch.manual_seed(0)
    model = build_backbone("small_cnn", 10, 1)
    x = torch.randn(6, 1, 8, 8)
    aux = AuxTraining(build_loss_prediction(model, x), FeatureTaps(model), 1.0, 1.0, detach_epoch=3)
    for epoch, reaches_backbone in ((2, True), (3, False)):
        model.zero_grad()
        with aux.taps.active() as maps:
            model(x)
        aux.loss(maps, torch.rand(6), epoch).backward()
        grad = model.body[0][0].weight.grad
        assert (grad is not None and grad.abs().sum() > 0) == reaches_backbone


def _config(strategy: str, **training: object) -> CellConfig:
    return CellConfig.model_validate({"dataset": "digits", "backbone": "small_cnn", "strategy": strategy,
                                      "budget": {"initial": 10, "query": 10, "rounds": 1},
                                      "training": {"epochs": 10, **training}})


def test_config_attaches_the_module_where_the_strategy_needs_it() -> None:
    assert _config("learning_loss").training.aux == "loss_prediction"
    assert _config("lplgrad").training.aux == "loss_prediction"
    assert _config("entropy").training.aux == "none"
    assert _config("entropy", aux="loss_prediction").training.aux_detach_epoch == 6  # 60 % of 10 epochs
    with pytest.raises(ValueError, match=r"remove training\.aux: none"):
        _config("learning_loss", aux="none")


def test_learning_loss_picks_the_highest_predicted_losses() -> None:
    class FakePool:
        def predicted_losses(self) -> torch.Tensor:
            return torch.tensor([0.1, 2.0, -1.0, 3.0, 0.5])

    unlabeled = np.array([10, 11, 12, 13, 14])
    ctx = SelectionContext(unlabeled, np.array([0]), np.random.default_rng(0), pool=FakePool())  # type: ignore[arg-type]
    assert LearningLoss().select(ctx, 2).tolist() == [13, 11]


def test_loss_prediction_trains_jointly_with_a_plain_strategy(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, "aux", """\
        defaults:
          dataset: digits
          backbone: small_cnn
          budget: {initial: 20, query: 10, rounds: 2}
          training: {epochs: 3, batch_size: 10}
        matrix:
          strategy: [entropy]
          training.aux: [none, loss_prediction]
        """)
    assert cli.main(["run", str(suite), "--results", str(tmp_path / "a")]) == 0
    assert cli.main(["run", str(suite), "--results", str(tmp_path / "b")]) == 0
    frame = load_results(tmp_path / "a").sort_values(["training.aux", "round"])
    with_aux = frame[frame["training.aux"] == "loss_prediction"]
    without = frame[frame["training.aux"] == "none"]
    assert len(with_aux) == len(without) == 3
    # the joint loss changes training, so the runs differ from round 0 on ...
    assert list(with_aux["train_loss"]) != list(without["train_loss"])
    # ... and stay deterministic
    again = load_results(tmp_path / "b").sort_values(["training.aux", "round"])
    assert list(again["accuracy"]) == list(frame["accuracy"])


def test_config_attaches_the_discriminator_for_jls_and_rejects_conflicts() -> None:
    assert _config("jls").training.aux == "discriminator"
    assert _config("entropy", aux="discriminator").training.aux_detach_epoch is None
    with pytest.raises(ValueError, match="selects with the loss_prediction module"):
        _config("learning_loss", aux="discriminator")


def test_joint_discriminator_learns_labeled_from_unlabeled(tmp_path: Path) -> None:
    from benchmark.data.loading import load_dataset
    from benchmark.training.augment import Normalizer
    from benchmark.training.aux import DiscriminatorModule, DiscriminatorTraining
    from benchmark.training.loop import AugmentationSpec
    from benchmark.training.trainer import train

    data = load_dataset("digits", tmp_path)
    torch.manual_seed(0)
    model = build_backbone("small_cnn", 10, 1)
    aux = DiscriminatorTraining(DiscriminatorModule(model.embedding_dim), weight=1.0,
                                unlabeled_images=data.train_x[100:600])
    norm = Normalizer(data.mean, data.std, torch.device("cpu"))
    cfg = _config("entropy", aux="discriminator", epochs=30, batch_size=20,
                  optimizer={"name": "adam", "lr": 1e-3}).training
    train(model, data.train_x[:100], data.train_y[:100], cfg, norm, AugmentationSpec(1, False),
          torch.Generator().manual_seed(0), aux=aux)
    model.eval()
    with torch.no_grad():
        p_labeled = aux.labeled_probability(model.features(norm(data.train_x[:100]))).mean()
        p_unlabeled = aux.labeled_probability(model.features(norm(data.train_x[100:600]))).mean()
    assert p_labeled > p_unlabeled + 0.1


def test_jls_picks_the_most_confidently_unlabeled() -> None:
    from benchmark.strategies.learning_loss import JLS

    class FakePool:
        def discriminator_labeled_probability(self) -> torch.Tensor:
            return torch.tensor([0.9, 0.1, 0.5, 0.05])

    ctx = SelectionContext(np.array([4, 5, 6, 7]), np.array([0]), np.random.default_rng(0),
                           pool=FakePool())  # type: ignore[arg-type]
    assert JLS().select(ctx, 2).tolist() == [7, 5]
