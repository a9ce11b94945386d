"""Issue 9's training settings: training.flip, augmentation resized_crop (also for the frozen linear head),
label propagation's phases (semi_warmup_epochs, semi_batch_size) and its reciprocal kNN graph."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError

import benchmark.training.augment as augment_module
import benchmark.training.heads as heads_module
import benchmark.training.loop as loop_module
import benchmark.training.semi as semi_module
import benchmark.training.supervised as supervised_module
from benchmark.config import CellConfig, TrainingConfig
from benchmark.data import dataset_info
from benchmark.data.base import ImageDataset
from benchmark.data.loading import load_dataset
from benchmark.models.base import Backbone, build_backbone
from benchmark.runner import CellContext, run_cell
from benchmark.store import SuiteStore
from benchmark.suite import parse_suite
from benchmark.training.augment import (
    RESIZED_CROP_SCALE,
    Normalizer,
    crop_boxes,
    random_crop,
    resized_crop_augment,
    resolve_flip,
)
from benchmark.training.heads import train_head
from benchmark.training.loop import AugmentationSpec, augment_batch
from benchmark.training.semi import knn_affinity, semi_schedule
from benchmark.training.trainer import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

POLICIES = ("standard", "strong", "resized_crop")


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> ImageDataset:
    return load_dataset("digits", tmp_path_factory.mktemp("data"))


def _digits_spec(setting: str) -> AugmentationSpec:
    """The digits registry entry (crop padding 1, no flips by default) with ``training.flip`` applied."""
    info = dataset_info("digits")
    return AugmentationSpec(info["crop_padding"], resolve_flip(setting, info["hflip"]))


def _setup(data: ImageDataset, **training: Any) -> tuple[Backbone, Normalizer, TrainingConfig]:
    torch.manual_seed(0)
    model = build_backbone("small_cnn", 10, 1)
    return model, Normalizer(data.mean, data.std, torch.device("cpu")), TrainingConfig.model_validate(training)


def _asymmetric(images: torch.Tensor) -> torch.Tensor:
    """Whether each image differs from its mirror image (only those can show a flip)."""
    return (images != images.flip(-1)).flatten(1).any(dim=1)


# --------------------------------------------------------------------------- training.flip


def test_resolve_flip_and_the_setting_is_validated() -> None:
    assert [resolve_flip("auto", d) for d in (True, False)] == [True, False]
    assert [resolve_flip("on", d) for d in (True, False)] == [True, True]
    assert [resolve_flip("off", d) for d in (True, False)] == [False, False]
    with pytest.raises(ValueError, match="auto, on, off"):
        resolve_flip("sometimes", True)
    assert TrainingConfig().flip == "auto"
    with pytest.raises(ValidationError, match="flip"):
        TrainingConfig.model_validate({"flip": "yes"})


@pytest.mark.parametrize("setting", ["auto", "on", "off"])
def test_standard_policy_flips_digits_only_when_flip_is_on(digits: ImageDataset, setting: str) -> None:
    x = digits.train_x[:64]
    spec = _digits_spec(setting)
    cropped = random_crop(x, spec.crop_padding, torch.Generator().manual_seed(3))  # the same crops as below
    out = augment_batch(x, "standard", spec, torch.Generator().manual_seed(3))
    same = (out == cropped).flatten(1).all(dim=1)
    mirrored = (out == cropped.flip(-1)).flatten(1).all(dim=1) & _asymmetric(cropped)
    assert bool((same | mirrored).all())
    if setting == "on":
        assert int(mirrored.sum()) > 10 and int(same.sum()) > 10  # about half of 64 each
    else:  # digits do not flip by default (auto), nor ever with off
        assert not bool(mirrored.any())


@pytest.mark.parametrize("setting", ["auto", "on", "off"])
def test_resized_crop_policy_flips_digits_only_when_flip_is_on(digits: ImageDataset, setting: str) -> None:
    x = digits.train_x[:64]
    unflipped = resized_crop_augment(x, False, torch.Generator().manual_seed(4))  # the same crops as below
    out = augment_batch(x, "resized_crop", _digits_spec(setting), torch.Generator().manual_seed(4))
    same = torch.isclose(out, unflipped).flatten(1).all(dim=1)
    mirrored = torch.isclose(out, unflipped.flip(-1)).flatten(1).all(dim=1) & _asymmetric(unflipped)
    assert bool((same | mirrored).all())
    assert (int(mirrored.sum()) > 10) == (setting == "on")


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("setting", ["auto", "on", "off"])
def test_every_policy_obeys_flip(monkeypatch: pytest.MonkeyPatch, digits: ImageDataset, policy: str,
                                 setting: str) -> None:
    calls: list[int] = []
    real = augment_module.random_hflip

    def counting(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        calls.append(images.shape[0])
        return real(images, generator)

    monkeypatch.setattr(augment_module, "random_hflip", counting)  # strong, resized_crop
    monkeypatch.setattr(loop_module, "random_hflip", counting)  # standard
    out = augment_batch(digits.train_x[:16], policy, _digits_spec(setting), torch.Generator().manual_seed(0))
    assert out.shape == (16, 1, 8, 8)
    assert calls == ([16] if setting == "on" else [])


def _spy_specs(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[AugmentationSpec]:
    seen: list[AugmentationSpec] = []
    real = module.augment_batch

    def spy(x: torch.Tensor, kind: str, spec: AugmentationSpec, generator: torch.Generator) -> torch.Tensor:
        seen.append(spec)
        return real(x, kind, spec, generator)

    monkeypatch.setattr(module, "augment_batch", spy)
    return seen


@pytest.mark.parametrize(("setting", "flips"), [("auto", False), ("on", True), ("off", False)])
@pytest.mark.parametrize("training", [{}, {"head": "linear"}, {"semi": "label_propagation", "semi_k": 5}])
def test_train_applies_flip_on_every_path(monkeypatch: pytest.MonkeyPatch, digits: ImageDataset, setting: str,
                                          flips: bool, training: dict[str, Any]) -> None:
    specs = [_spy_specs(monkeypatch, m) for m in (supervised_module, heads_module, semi_module)]
    model, norm, cfg = _setup(digits, epochs=1, batch_size=16, flip=setting, **training)
    dataset_default = AugmentationSpec(1, False)  # digits: the registry says no flips
    train(model, digits.train_x[:20], digits.train_y[:20], cfg, norm, dataset_default, torch.Generator().manual_seed(0),
          pool_images=digits.train_x[20:80])
    seen = [s for spied in specs for s in spied]
    assert seen and all(s.hflip == flips and s.crop_padding == 1 for s in seen)


# --------------------------------------------------------------------------- resized_crop


def test_crop_boxes_cover_the_scale_range_and_stay_inside_the_image() -> None:
    generator = torch.Generator().manual_seed(0)
    boxes = crop_boxes(20_000, generator, torch.device("cpu"), RESIZED_CROP_SCALE, (3 / 4, 4 / 3))
    width, height, cx, cy = boxes.unbind(1)
    area = width * height
    assert RESIZED_CROP_SCALE == (0.08, 1.0)  # seed 003 l.111
    assert float(area.min()) >= 0.08 - 1e-6 and float(area.max()) <= 1 + 1e-6
    assert float(area.min()) < 0.09 and float(area.max()) > 0.9  # the whole range is drawn
    # areas are uniform: about a quarter of the boxes below 0.08 + 0.92 / 4 (clamping only touches large ones)
    assert abs(float((area < 0.08 + 0.92 / 4).float().mean()) - 0.25) < 0.02
    free = (width < 1) & (height < 1)  # unclamped boxes keep their log-uniform aspect ratio
    aspect = width[free] / height[free]
    assert float(aspect.min()) >= 3 / 4 - 1e-5 and float(aspect.max()) <= 4 / 3 + 1e-5
    assert bool(((cx.abs() + width) <= 1 + 1e-6).all() and ((cy.abs() + height) <= 1 + 1e-6).all())


def test_resized_crop_uses_seed_003s_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    scales: list[tuple[float, float]] = []
    real = augment_module.random_resized_crop

    def spy(x: torch.Tensor, generator: torch.Generator, scale: tuple[float, float] = (0.0, 0.0),
            **kwargs: Any) -> torch.Tensor:
        scales.append(scale)
        return real(x, generator, scale=scale, **kwargs)

    monkeypatch.setattr(augment_module, "random_resized_crop", spy)
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    resized_crop_augment(images, True, torch.Generator().manual_seed(0))
    augment_module.strong_augment(images, True, torch.Generator().manual_seed(0))
    assert scales == [(0.08, 1.0), (0.2, 1.0)]  # the strong policy keeps its self-training scale


@pytest.mark.parametrize("shape", [(8, 1, 8, 8), (5, 3, 32, 32), (3, 3, 20, 28)])
def test_resized_crop_shapes_range_and_determinism(shape: tuple[int, ...]) -> None:
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    a = resized_crop_augment(images, True, torch.Generator().manual_seed(5))
    b = resized_crop_augment(images, True, torch.Generator().manual_seed(5))
    assert a.shape == images.shape and a.dtype == torch.float32  # output size = input size
    assert torch.equal(a, b)
    assert not torch.equal(a, resized_crop_augment(images, True, torch.Generator().manual_seed(6)))
    assert float(a.min()) >= 0 and float(a.max()) <= 255 + 1e-3  # the 0..255 scale the Normalizer expects


def test_resized_crop_zooms_in() -> None:
    """A crop of width fraction w is stretched to the full width: a horizontal ramp's slope (grey levels
    per output pixel) shrinks by w, never grows (no zoom out), down to about 1/4 for areas near 0.08."""
    ramp = torch.linspace(0, 255, 32).round().to(torch.uint8).view(1, 1, 1, 32).expand(200, 1, 32, 32).contiguous()
    out = resized_crop_augment(ramp, False, torch.Generator().manual_seed(0))
    slope = (out[:, 0, 16, 20] - out[:, 0, 16, 12]) / 8  # away from the borders
    identity = 255 / 31
    assert float(slope.max()) <= identity * 1.01
    assert float(slope.min()) < 0.4 * identity and float(slope.min()) > 0.2 * identity


def test_a_digits_cell_runs_with_resized_crop_flip_on_and_the_linear_head(tmp_path: Path) -> None:
    suite = parse_suite({"defaults": {"dataset": "digits", "backbone": "small_cnn", "strategy": "entropy",
                                      "budget": {"initial": 20, "query": 10, "rounds": 1},
                                      "training": {"epochs": 2, "batch_size": 10, "augmentation": "resized_crop",
                                                   "flip": "on"}},
                         "matrix": {"training.head": ["full", "linear"]}}, tmp_path / "s.yaml")
    assert len(suite.cells) == 2
    for cell in suite.cells:
        rows = run_cell(cell, CellContext(SuiteStore(tmp_path, "s"), "cpu", tmp_path))
        assert [r["n_labeled"] for r in rows] == [20, 30] and all(0 <= r["accuracy"] <= 1 for r in rows)
        assert cell.config.training.augmentation == "resized_crop" and cell.config.training.flip == "on"


# --------------------------------------------------------------------------- the frozen linear head


def _count_feature_calls(model: Backbone) -> list[int]:
    calls: list[int] = []
    real = model.features

    def counting(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return real(x)

    model.features = counting  # type: ignore[method-assign]
    return calls


@pytest.mark.parametrize("policy", ["none", *POLICIES])
def test_linear_head_recomputes_augmented_features_each_epoch(digits: ImageDataset, policy: str) -> None:
    model, norm, cfg = _setup(digits, epochs=3, batch_size=32, head="linear", augmentation=policy,
                              optimizer={"name": "sgd", "lr": 1.0, "weight_decay": 0.0})
    model.head_dropout = torch.nn.Dropout(0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = _count_feature_calls(model)
    losses: list[float] = []
    train(model, digits.train_x[:100], digits.train_y[:100], cfg, norm, AugmentationSpec(1, False),
          torch.Generator().manual_seed(0), lambda e, n, loss: losses.append(loss))
    if policy == "none":
        assert calls == [100]  # one pass, features reused by every epoch
    else:
        assert calls == [32, 32, 32, 4] * 3  # every batch of every epoch through the frozen backbone
    changed = {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}
    assert changed == {"head.weight", "head.bias"}  # batch-norm statistics untouched: the backbone ran in eval
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)


def test_linear_head_augmentation_is_seeded(digits: ImageDataset) -> None:
    heads = []
    for _ in range(2):
        model, norm, cfg = _setup(digits, epochs=2, batch_size=32, head="linear", augmentation="resized_crop")
        train(model, digits.train_x[:64], digits.train_y[:64], cfg, norm, AugmentationSpec(1, True),
              torch.Generator().manual_seed(7))
        heads.append(model.head.weight.detach().clone())
    assert torch.equal(heads[0], heads[1])


def test_linear_head_augmentation_needs_the_dataset_spec(digits: ImageDataset) -> None:
    model, norm, cfg = _setup(digits, epochs=1, head="linear", augmentation="standard")
    with pytest.raises(ValueError, match="needs the dataset's augmentation"):
        train_head(model, digits.train_x[:20], digits.train_y[:20], cfg, norm, torch.Generator())


def test_svm_head_ignores_augmentation(digits: ImageDataset) -> None:
    weights = []
    for policy in ("none", "resized_crop"):
        model, norm, cfg = _setup(digits, head="svm", augmentation=policy)
        train(model, digits.train_x[:80], digits.train_y[:80], cfg, norm, AugmentationSpec(1, True),
              torch.Generator().manual_seed(0))
        weights.append(model.head.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


# --------------------------------------------------------------------------- label propagation's phases


def _cell(**training: Any) -> CellConfig:
    return CellConfig.model_validate({"dataset": "digits", "backbone": "small_cnn", "strategy": "random",
                                      "budget": {"initial": 10, "query": 10, "rounds": 1}, "training": training})


def test_semi_phases_resolve_in_the_cell_config() -> None:
    auto = _cell(semi="label_propagation", epochs=7, batch_size=32).training
    assert (auto.semi_warmup_epochs, auto.semi_batch_size) == (7, 32)
    paper = _cell(semi="label_propagation", epochs=200, batch_size=32, semi_batch_size=128).training
    assert (paper.semi_warmup_epochs, paper.semi_batch_size) == (200, 128)  # seed 004 l.188, Table I
    none = _cell(semi="label_propagation", semi_warmup_epochs=0).training
    assert none.semi_warmup_epochs == 0
    plain = _cell().training
    assert (plain.semi_warmup_epochs, plain.semi_batch_size, plain.semi_graph) == (None, None, "reciprocal")
    assert semi_schedule(TrainingConfig(epochs=4, batch_size=9)) == (4, 9)
    assert semi_schedule(TrainingConfig(epochs=4, semi_warmup_epochs=0, semi_batch_size=12)) == (0, 12)


@pytest.mark.parametrize(("training", "message"), [
    ({"semi_batch_size": 128}, "semi_batch_size is only read by training.semi: label_propagation"),
    ({"semi_warmup_epochs": 3}, "semi_warmup_epochs is only read by training.semi: label_propagation"),
    ({"semi": "label_propagation", "semi_batch_size": 1}, "semi_batch_size"),
    ({"semi": "label_propagation", "semi_warmup_epochs": -1}, "semi_warmup_epochs"),
    ({"semi": "label_propagation", "batch_size": 1}, "semi_batch_size \\(auto: batch_size\\) must be >= 2"),
    ({"semi": "label_propagation", "semi_graph": "mutual"}, "semi_graph"),
])
def test_semi_settings_are_checked(training: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _cell(**training)


def _record_batches(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[int]:
    sizes: list[int] = []
    real = module.augment_batch

    def spy(x: torch.Tensor, kind: str, spec: AugmentationSpec, generator: torch.Generator) -> torch.Tensor:
        sizes.append(x.shape[0])
        return real(x, kind, spec, generator)

    monkeypatch.setattr(module, "augment_batch", spy)
    return sizes


@pytest.mark.parametrize("warmup", [None, 0, 2])
def test_label_propagation_runs_the_warm_up_at_batch_size_then_semi_at_semi_batch_size(
        monkeypatch: pytest.MonkeyPatch, digits: ImageDataset, warmup: int | None) -> None:
    sup_batches = _record_batches(monkeypatch, supervised_module)  # train_supervised (SUP, line 4)
    semi_batches = _record_batches(monkeypatch, semi_module)  # the SEMI epochs (line 7)
    model, norm, cfg = _setup(digits, epochs=3, batch_size=8, semi="label_propagation", semi_k=5,
                              semi_warmup_epochs=warmup, semi_batch_size=32)
    epochs: list[tuple[int, int]] = []
    train(model, digits.train_x[:30], digits.train_y[:30], cfg, norm, AugmentationSpec(1, False),
          torch.Generator().manual_seed(0), lambda e, n, loss: epochs.append((e, n)), pool_images=digits.train_x[30:94])
    sup_epochs = 3 if warmup is None else warmup  # auto: as many as the SEMI epochs
    assert epochs == [(e, sup_epochs + 3) for e in range(1, sup_epochs + 4)]
    assert sup_batches == [8, 8, 8, 6] * sup_epochs  # |L| = 30 in batches of batch_size
    # 16 labeled + 16 pseudo-labeled per batch; |U| / 2 = 32 pseudo-labels -> 2 batches an epoch
    assert semi_batches == [32, 32] * 3


# --------------------------------------------------------------------------- the reciprocal graph


def _dense_knn(x: torch.Tensor, k: int, gamma: float, reciprocal: bool) -> torch.Tensor:
    """Brute force: the full cosine matrix, each row's k nearest others, mutual pairs or the union A + A^T."""
    u = torch.nn.functional.normalize(x.double(), dim=1)
    cos = u @ u.T
    n = x.shape[0]
    near = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        others = sorted((j for j in range(n) if j != i), key=lambda j: -float(cos[i, j]))[:k]
        near[i, others] = True
    a = torch.where(near, cos.clamp(min=0) ** gamma, torch.zeros((), dtype=torch.float64))
    return torch.where(near & near.T, a, 0.0) if reciprocal else a + a.T


@pytest.mark.parametrize("block_elements", [1 << 20, 90])  # one block; blocks of 2 rows
@pytest.mark.parametrize("reciprocal", [True, False])
def test_knn_affinity_equals_the_dense_construction(block_elements: int, reciprocal: bool) -> None:
    x = torch.randn(45, 6, generator=torch.Generator().manual_seed(2))
    w = knn_affinity(x, k=5, gamma=3.0, block_elements=block_elements, reciprocal=reciprocal)
    assert w.layout == torch.sparse_coo and w.is_coalesced() and w.shape == (45, 45)
    dense = w.to_dense().double()
    torch.testing.assert_close(dense, _dense_knn(x, 5, 3.0, reciprocal), rtol=1e-5, atol=1e-7)
    assert torch.equal(dense, dense.T) and (dense.diagonal() == 0).all()
    if reciprocal:  # a strict subgraph here: some neighbourships are one-sided
        assert 0 < int((dense > 0).sum()) < int((knn_affinity(x, k=5, gamma=3.0).to_dense() > 0).sum())


def test_symmetric_graph_is_the_default_of_the_function_and_unchanged() -> None:
    x = torch.randn(30, 4, generator=torch.Generator().manual_seed(3))
    w = knn_affinity(x, k=4, gamma=3.0).to_dense()
    torch.testing.assert_close(w.double(), _dense_knn(x, 4, 3.0, reciprocal=False), rtol=1e-5, atol=1e-7)
    assert torch.equal(w, knn_affinity(x, k=4, gamma=3.0, reciprocal=False).to_dense())


@pytest.mark.parametrize(("graph", "reciprocal"), [("reciprocal", True), ("symmetric", False)])
def test_label_propagation_builds_the_configured_graph(monkeypatch: pytest.MonkeyPatch, digits: ImageDataset,
                                                       graph: str, reciprocal: bool) -> None:
    seen: list[bool] = []
    real = semi_module.knn_affinity

    def spy(features: torch.Tensor, k: int, gamma: float, **kwargs: Any) -> torch.Tensor:
        seen.append(kwargs["reciprocal"])
        return real(features, k, gamma, **kwargs)

    monkeypatch.setattr(semi_module, "knn_affinity", spy)
    model, norm, cfg = _setup(digits, epochs=2, batch_size=16, semi="label_propagation", semi_k=5,
                              semi_graph=graph, semi_warmup_epochs=1)
    train(model, digits.train_x[:20], digits.train_y[:20], cfg, norm, AugmentationSpec(1, False),
          torch.Generator().manual_seed(0), pool_images=digits.train_x[20:60])
    assert seen == [reciprocal, reciprocal]  # one graph per SEMI epoch


def test_pad4_crop_is_seed_004s_uniform_4x4_translation() -> None:
    """Seed 004 l.186 ("4x4 random translations", [33]'s RandomTranslateWithReflect(4)): every integer shift
    in [-4, 4] x [-4, 4] equally likely. alb's pad-4 crop on CIFAR-10 draws exactly that; only the fill of the
    uncovered border differs (zeros here, reflection in [33]), which the suite declares."""
    from benchmark.data import DATASETS

    assert DATASETS.entry("cifar10").info.crop_padding == 4
    n = 16_200
    images = torch.zeros(n, 1, 32, 32, dtype=torch.uint8)
    images[:, 0, 16, 16] = 255  # one bright pixel: where it lands is the translation
    moved = random_crop(images, 4, torch.Generator().manual_seed(0))
    where = moved.view(n, -1).argmax(dim=1)
    shifts = torch.stack([where // 32 - 16, where % 32 - 16], dim=1)
    assert int(shifts.abs().max()) == 4
    counts = torch.unique(shifts, dim=0, return_counts=True)[1]
    assert len(counts) == 81  # all 9 x 9 shifts occur
    expected = n / 81
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 124.0  # chi-square, 80 degrees of freedom: p ~ 0.001
    assert int(moved[:, 0].sum(dim=(1, 2)).ne(255).sum()) == 0  # a shift, never a resize: the pixel survives
