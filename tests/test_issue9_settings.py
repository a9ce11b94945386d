"""Issue 9 settings: training.flip (seed 001 l.134) and initial_strategy: balanced (seed 004 l.203)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.config import TrainingConfig
from benchmark.data import dataset_info
from benchmark.data.loading import load_dataset
from benchmark.errors import ConfigError
from benchmark.runner import CellContext, run_cell
from benchmark.store import SuiteStore
from benchmark.strategies import STRATEGIES
from benchmark.strategies.balanced import balanced_selection
from benchmark.strategies.base import SelectionContext
from benchmark.suite import Suite, parse_suite
from benchmark.training import supervised, trainer
from benchmark.training.augment import Normalizer, resolve_flip
from benchmark.training.loop import AugmentationSpec, augment_batch

# --------------------------------------------------------------------------- training.flip


@pytest.mark.parametrize(("setting", "expected"), [("auto", False), ("on", True), ("off", False)])
def test_flip_decision_for_digits(setting: str, expected: bool) -> None:
    assert dataset_info("digits")["hflip"] is False  # digits: a mirrored digit is not the same digit
    assert resolve_flip(setting, dataset_info("digits")["hflip"]) is expected


def test_flip_auto_keeps_a_flipping_dataset_and_off_overrides_it() -> None:
    assert resolve_flip("auto", True) is True and resolve_flip("off", True) is False


def test_unknown_flip_setting_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"training\.flip must be one of auto, on, off"):
        resolve_flip("sometimes", True)
    with pytest.raises(ValueError, match="flip"):
        TrainingConfig.model_validate({"flip": "sometimes"})


def _asymmetric_batch(n: int = 64) -> torch.Tensor:
    """uint8 images whose left half is bright and right half dark: a flip is visible in every image."""
    x = torch.zeros(n, 1, 8, 8, dtype=torch.uint8)
    x[..., :4] = 200
    return x


def _flipped(out: torch.Tensor) -> torch.Tensor:
    """Per image: is its right half brighter than its left half (i.e. was it mirrored)?"""
    out = out.float()
    return out[..., 4:].mean(dim=(1, 2, 3)) > out[..., :4].mean(dim=(1, 2, 3))


@pytest.mark.parametrize("policy", ["standard", "strong", "resized_crop"])
def test_flip_on_flips_some_images_and_off_never(policy: str) -> None:
    x = _asymmetric_batch()
    digits_default = dataset_info("digits")["hflip"]
    seen = {}
    for setting in ("on", "off"):
        spec = AugmentationSpec(0, resolve_flip(setting, digits_default))
        out = augment_batch(x, policy, spec, torch.Generator().manual_seed(0))
        seen[setting] = int(_flipped(out).sum())
    assert 0 < seen["on"] < len(x)  # about half of the images are mirrored
    assert seen["off"] == 0


@pytest.mark.parametrize(("setting", "expected"), [("auto", False), ("on", True), ("off", False)])
def test_train_applies_the_flip_setting(setting: str, expected: bool, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmark.models.base import build_backbone

    data = load_dataset("digits", tmp_path)
    info = dataset_info("digits")
    specs: list[bool] = []
    original = supervised.augment_batch

    def recording(x: torch.Tensor, kind: str, spec: AugmentationSpec, generator: torch.Generator) -> torch.Tensor:
        specs.append(spec.hflip)
        return original(x, kind, spec, generator)

    monkeypatch.setattr(supervised, "augment_batch", recording)  # the supervised loop's augmentation
    torch.manual_seed(0)
    model = build_backbone("small_cnn", 10, 1)
    cfg = TrainingConfig.model_validate({"epochs": 1, "batch_size": 32, "flip": setting})
    normalize = Normalizer(data.mean, data.std, torch.device("cpu"))
    trainer.train(model, data.train_x[:64], data.train_y[:64], cfg, normalize,
                  AugmentationSpec(info["crop_padding"], info["hflip"]), torch.Generator().manual_seed(0))
    assert specs and set(specs) == {expected}


# --------------------------------------------------------------------------- initial_strategy: balanced


@pytest.fixture(scope="module")
def digits_labels(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    return load_dataset("digits", tmp_path_factory.mktemp("data")).train_y.numpy()


def _balanced(labels: np.ndarray, budget: int, seed: int) -> np.ndarray:
    ctx = SelectionContext(np.arange(len(labels)), np.empty(0, np.int64), np.random.default_rng(seed),
                           labels=labels)
    return STRATEGIES.get("balanced")().select(ctx, budget)


def test_balanced_100_on_digits_is_10_per_class(digits_labels: np.ndarray) -> None:
    picked = _balanced(digits_labels, 100, 0)
    assert len(np.unique(picked)) == 100
    assert np.bincount(digits_labels[picked], minlength=10).tolist() == [10] * 10


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_balanced_25_counts_differ_by_at_most_one(digits_labels: np.ndarray, seed: int) -> None:
    counts = np.bincount(digits_labels[_balanced(digits_labels, 25, seed)], minlength=10)
    assert counts.sum() == 25 and counts.max() - counts.min() <= 1


def test_balanced_is_deterministic_for_a_seed_and_varies_with_it(digits_labels: np.ndarray) -> None:
    np.testing.assert_array_equal(_balanced(digits_labels, 25, 7), _balanced(digits_labels, 25, 7))
    assert not np.array_equal(_balanced(digits_labels, 25, 7), _balanced(digits_labels, 25, 8))


def test_balanced_picks_only_unlabeled_samples() -> None:
    labels = np.repeat(np.arange(3), 10)
    unlabeled = np.arange(5, 30)  # class 0 has 5 unlabeled samples left
    picked = balanced_selection(unlabeled, labels, 15, np.random.default_rng(0))
    assert np.isin(picked, unlabeled).all() and np.bincount(labels[picked]).tolist() == [5, 5, 5]


def test_balanced_with_too_few_samples_of_a_class_is_a_clear_error() -> None:
    labels = np.array([0] * 20 + [1] * 2)
    with pytest.raises(ConfigError, match="needs 5 samples of class 1, but the pool has only 2"):
        balanced_selection(np.arange(22), labels, 10, np.random.default_rng(0))


def test_balanced_without_labels_is_an_error() -> None:
    ctx = SelectionContext(np.arange(10), np.empty(0, np.int64), np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="needs the pool's labels"):
        STRATEGIES.get("balanced")().select(ctx, 5)


def _suite(tmp_path: Path, **picks: str) -> Suite:
    return parse_suite({
        "defaults": {"dataset": "digits", "backbone": "small_cnn", **picks,
                     "budget": {"initial": 20, "query": 10, "rounds": 1},
                     "training": {"epochs": 1, "batch_size": 32}},
    }, tmp_path / "balanced.yaml")


def test_balanced_is_rejected_as_a_query_strategy(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="balanced picks only the initial set; use initial_strategy: balanced"):
        _suite(tmp_path, strategy="balanced")


def test_balanced_initial_set_in_a_real_cell(tmp_path: Path, digits_labels: np.ndarray) -> None:
    suite = _suite(tmp_path, strategy="random", initial_strategy="balanced")
    [cell] = suite.cells
    rows = run_cell(cell, CellContext(SuiteStore(tmp_path, "balanced"), "cpu", tmp_path))
    assert [r["n_labeled"] for r in rows] == [20, 30]
    assert np.bincount(digits_labels[np.asarray(rows[0]["selected"])], minlength=10).tolist() == [2] * 10
    chosen = np.concatenate([r["selected"] for r in rows])
    assert len(np.unique(chosen)) == 30
