"""Embedded data, download errors, on-device augmentation, the trainer's recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.config import TrainingConfig
from benchmark.data import DATASETS
from benchmark.data.loading import load_dataset
from benchmark.errors import DatasetUnavailableError
from benchmark.training.augment import Normalizer, random_crop, random_hflip
from benchmark.training.loop import AugmentationSpec, make_scheduler
from benchmark.training.trainer import evaluate, train


def test_digits_is_embedded_fixed_and_matches_the_registry(tmp_path: Path) -> None:
    data = load_dataset("digits", tmp_path)
    info = DATASETS.entry("digits").info
    assert data.train_x.shape == (info.n_train, 1, 8, 8) and data.train_x.dtype == torch.uint8
    assert data.test_x.shape[0] == info.n_test
    assert sorted(data.train_y.unique().tolist()) == list(range(10))
    assert int(data.train_x.max()) == 255
    again = load_dataset.__wrapped__("digits", tmp_path)  # bypass the cache: the split is fixed
    assert torch.equal(again.train_y, data.train_y)


def test_missing_dataset_says_what_to_download_and_where(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    def offline(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no internet")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    from benchmark.data.torchvision_sets import load_cifar10

    with pytest.raises(DatasetUnavailableError) as err:
        load_cifar10(tmp_path / "data")
    message = str(err.value)
    assert "cifar-10-python.tar.gz" in message and str(tmp_path / "data") in message
    assert "--data-dir" in message


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image() -> None:
    images = torch.arange(2 * 3 * 5 * 5, dtype=torch.uint8).view(2, 3, 5, 5)
    gen = torch.Generator().manual_seed(0)
    out = random_crop(images, padding=2, generator=gen)
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for b in range(2):
        windows = [padded[b, :, i:i + 5, j:j + 5] for i in range(5) for j in range(5)]
        assert any(torch.equal(out[b], w) for w in windows)
    assert torch.equal(random_crop(images, 0, gen), images)


def test_hflip_flips_about_half_and_is_seeded() -> None:
    images = torch.randint(0, 255, (400, 1, 4, 4), dtype=torch.uint8)
    out = random_hflip(images, torch.Generator().manual_seed(1))
    flipped = [torch.equal(o, i.flip(2)) and not torch.equal(o, i) for o, i in zip(out, images, strict=True)]
    assert 150 < sum(flipped) < 250
    assert torch.equal(out, random_hflip(images, torch.Generator().manual_seed(1)))


def test_normalizer_standardises_with_the_given_statistics() -> None:
    norm = Normalizer((0.5,), (0.25,), torch.device("cpu"))
    x = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
    assert torch.allclose(norm(x).flatten(), torch.tensor([-2.0, 2.0]))


def test_multistep_schedule_drops_lr_at_the_milestones() -> None:
    cfg = TrainingConfig.model_validate({"epochs": 6, "schedule": {"name": "multistep", "milestones": [2, 4],
                                                                   "gamma": 0.1}})
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(opt, cfg.schedule, cfg.epochs)
    assert sched is not None
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_training_learns_digits_and_evaluation_is_in_eval_mode(tmp_path: Path) -> None:
    from benchmark.models.base import build_backbone

    data = load_dataset("digits", tmp_path)
    torch.manual_seed(0)
    model = build_backbone("small_cnn", 10, 1)
    norm = Normalizer(data.mean, data.std, torch.device("cpu"))
    cfg = TrainingConfig.model_validate({"epochs": 8, "batch_size": 32,
                                         "optimizer": {"name": "sgd", "lr": 0.05}})
    losses: list[float] = []
    result = train(model, data.train_x[:300], data.train_y[:300], cfg, norm, AugmentationSpec(1, False),
                   torch.Generator().manual_seed(0), lambda e, n, loss: losses.append(loss))
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert result.final_loss == losses[-1]
    model.train()
    metrics = evaluate(model, data.test_x, data.test_y, norm, 10)
    assert not model.training
    assert metrics["accuracy"] > 0.8 and 0 < metrics["macro_f1"] <= 1


@settings(max_examples=300, deadline=None)
@given(n=st.integers(min_value=1, max_value=400), batch_size=st.integers(min_value=1, max_value=130))
def test_every_epoch_visits_each_sample_exactly_once(n: int, batch_size: int) -> None:
    """Issue 20.1: split_batches(arange(65), 32) used to cover 33 distinct samples."""
    from benchmark.training.loop import epoch_batches, split_batches

    for batches in (split_batches(torch.arange(n), batch_size),
                    epoch_batches(n, batch_size, torch.Generator().manual_seed(n), torch.device("cpu"))):
        seen = torch.cat(batches)
        assert sorted(seen.tolist()) == list(range(n))
        if n >= 2 and batch_size >= 2:  # batch norm never sees a lone sample
            assert min(b.numel() for b in batches) >= 2
        assert max(b.numel() for b in batches) <= batch_size + 1
