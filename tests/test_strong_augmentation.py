"""Seed 003's strong augmentation on tensors: crop geometry, colour jitter, grayscale, real cells."""

from __future__ import annotations

from pathlib import Path

import torch

from benchmark.runner import CellContext, run_cell
from benchmark.store import SuiteStore
from benchmark.suite import parse_suite
from benchmark.training.augment import color_jitter, random_grayscale, random_resized_crop, strong_augment


def _images(n: int = 16, c: int = 3, size: int = 12) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(0))


def test_full_area_unit_ratio_crop_is_the_identity() -> None:
    x = _images()
    out = random_resized_crop(x, torch.Generator().manual_seed(1), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.allclose(out, x, atol=1e-5)


def test_small_crops_zoom_in() -> None:
    # a horizontal ramp: a zoomed crop spans a smaller range of values than the whole image
    ramp = torch.linspace(0, 1, 32).expand(4, 3, 32, 32).contiguous()
    out = random_resized_crop(ramp, torch.Generator().manual_seed(2), scale=(0.2, 0.2), ratio=(1.0, 1.0))
    spans = out.amax(dim=(1, 2, 3)) - out.amin(dim=(1, 2, 3))
    assert (spans < 0.6).all() and (spans > 0.3).all()  # sqrt(0.2) ~ 0.45 of the width


def test_grayscale_makes_channels_equal_with_its_probability() -> None:
    x = _images(n=2000, size=2)
    out = random_grayscale(x, torch.Generator().manual_seed(3), p=0.2)
    gray = (out[:, 0] == out[:, 1]).all(dim=(1, 2)) & (out[:, 1] == out[:, 2]).all(dim=(1, 2))
    assert 0.15 < gray.float().mean() < 0.25
    assert torch.equal(random_grayscale(x, torch.Generator(), p=0.0), x)
    assert torch.equal(random_grayscale(x[:, :1], torch.Generator(), p=1.0), x[:, :1])  # grey input untouched


def test_color_jitter_changes_about_p_of_the_images_and_stays_in_range() -> None:
    x = _images(n=1000, size=4)
    out = color_jitter(x, torch.Generator().manual_seed(4), p=0.8)
    changed = (out - x).abs().amax(dim=(1, 2, 3)) > 1e-6
    assert 0.75 < changed.float().mean() < 0.85
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(color_jitter(x, torch.Generator(), p=0.0), x)


def test_strong_augment_is_seeded_and_on_the_normaliser_scale() -> None:
    images = (_images() * 255).to(torch.uint8)
    a = strong_augment(images, True, torch.Generator().manual_seed(5))
    b = strong_augment(images, True, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.dtype == torch.float32 and a.shape == images.shape
    assert a.min() >= 0 and a.max() <= 255
    assert not torch.equal(a, strong_augment(images, True, torch.Generator().manual_seed(6)))


def test_cells_train_with_strong_augmentation(tmp_path: Path) -> None:
    suite = parse_suite({"defaults": {"dataset": "digits", "backbone": "small_cnn", "strategy": "entropy",
                                      "budget": {"initial": 20, "query": 10, "rounds": 1},
                                      "training": {"epochs": 2, "batch_size": 10, "augmentation": "strong"}}},
                        tmp_path / "s.yaml")
    rows = run_cell(suite.cells[0], CellContext(SuiteStore(tmp_path, "s"), "cpu", tmp_path))
    assert [r["n_labeled"] for r in rows] == [20, 30]
    assert suite.cells[0].config.training.augmentation == "strong"
