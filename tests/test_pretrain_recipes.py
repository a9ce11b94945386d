"""Pre-training recipes that follow the papers: SimSiam's Gaussian blur (seed 003 l.111) and DeepCluster's
settings from Caron et al.'s code (seed 004 l.190 "follow the settings of [5]")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import write_suite
from pydantic import ValidationError

from benchmark import cli, versions
from benchmark.config import PretrainingConfig
from benchmark.data.digits import load_digits_dataset
from benchmark.models.base import build_backbone
from benchmark.pretrain import deepcluster as deepcluster_module
from benchmark.pretrain import simsiam as simsiam_module
from benchmark.pretrain.blur import BLUR_P, BLUR_SIGMA, gaussian_blur, kernel_radius, random_gaussian_blur
from benchmark.pretrain.cache import cache_key
from benchmark.pretrain.initial import pretrainer
from benchmark.pretrain.settings import resolve
from benchmark.store import load_results
from benchmark.training.augment import Normalizer
from benchmark.training.execution import FP32_CPU

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _impulse(n: int, size: int = 32) -> torch.Tensor:
    x = torch.zeros(n, 1, size, size)
    x[:, :, size // 2, size // 2] = 1.0
    return x


def _spread(blurred: torch.Tensor) -> torch.Tensor:
    """Per-image variance of the blurred impulse along the rows (= sigma^2 for an untruncated Gaussian)."""
    mass = blurred[:, 0].sum(dim=2)  # (n, rows)
    rows = torch.arange(mass.shape[1], dtype=torch.float32)
    mean = (mass * rows).sum(1) / mass.sum(1)
    return (mass * (rows[None, :] - mean[:, None]) ** 2).sum(1) / mass.sum(1)


# ---- the blur itself


def test_blur_has_the_requested_sigma_per_image() -> None:
    sigma = torch.tensor([0.7, 1.0, 2.0])
    out = gaussian_blur(_impulse(3), sigma)
    assert torch.allclose(out.sum(dim=(1, 2, 3)), torch.ones(3), atol=1e-5), "blur must keep the mass"
    # a sampled Gaussian's variance falls a little short of sigma^2 below about 1 pixel
    assert torch.allclose(_spread(out).sqrt(), sigma, rtol=0.05)


def test_tiny_sigma_is_nearly_the_identity() -> None:
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = gaussian_blur(x, torch.full((4,), 0.1), sigma_max=2.0)
    assert (out - x).abs().max() < 1e-6


def test_random_blur_draws_sigma_in_the_paper_range_with_probability_half() -> None:
    assert BLUR_SIGMA == (0.1, 2.0) and BLUR_P == 0.5
    n = 2000
    x = _impulse(n, 24)
    out = random_gaussian_blur(x, torch.Generator().manual_seed(1))
    # the documented draws: n sigmas uniform in [0.1, 2], then n apply-coins with p = 1/2
    gen = torch.Generator().manual_seed(1)
    sigma = 0.1 + 1.9 * torch.rand(n, generator=gen)
    apply = torch.rand(n, generator=gen) < 0.5
    assert 0.46 < apply.float().mean() < 0.54 and sigma.min() >= 0.1 and sigma.max() <= 2.0
    assert torch.equal(out[~apply], x[~apply])
    assert torch.allclose(out[apply], gaussian_blur(x[apply], sigma[apply], sigma_max=2.0), atol=1e-6)
    wide = apply & (sigma > 1.0)
    assert torch.allclose(_spread(out[wide]).sqrt(), sigma[wide], rtol=0.02)


def test_random_blur_is_deterministic_in_the_generator() -> None:
    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255
    a = random_gaussian_blur(x, torch.Generator().manual_seed(5))
    b = random_gaussian_blur(x, torch.Generator().manual_seed(5))
    c = random_gaussian_blur(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_kernel_fits_small_images_and_bad_ranges_are_refused() -> None:
    assert kernel_radius(2.0, 32, 32) == 6 and kernel_radius(2.0, 8, 8) == 6 and kernel_radius(2.0, 5, 9) == 4
    out = random_gaussian_blur(torch.rand(3, 1, 4, 4), torch.Generator().manual_seed(0), p=1.0)
    assert out.shape == (3, 1, 4, 4) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="sigma"):
        random_gaussian_blur(torch.rand(2, 1, 8, 8), torch.Generator(), sigma_range=(0.0, 2.0))
    with pytest.raises(ValueError, match="one sigma per image"):
        gaussian_blur(torch.rand(2, 1, 8, 8), torch.ones(3))


# ---- SimSiam uses it


def test_simsiam_views_are_blurred(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = simsiam_module.random_gaussian_blur

    def counting(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        calls.append(x.shape[0])
        return real(x, generator)

    monkeypatch.setattr(simsiam_module, "random_gaussian_blur", counting)
    data = load_digits_dataset()
    torch.manual_seed(0)
    model = build_backbone("small_cnn", 10, 1)
    cfg = PretrainingConfig(epochs=1, batch_size=64)
    images = data.train_x[:128]
    losses = pretrainer("simsiam")(model, images, Normalizer(data.mean, data.std, torch.device("cpu")), False,
                                   cfg, 10, torch.Generator().manual_seed(0), FP32_CPU, None)
    assert len(losses) == 1 and calls == [64, 64, 64, 64]  # two views of each of two batches


def test_a_digits_simsiam_cell_still_runs(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, "blur", """\
name: blur
defaults:
  dataset: digits
  backbone: small_cnn
  strategy: entropy
  init: simsiam
  budget: {initial: 20, query: 20, rounds: 1}
  pretraining: {epochs: 1, batch_size: 64}
  training: {epochs: 1, batch_size: 16}
""")
    results = tmp_path / "results"
    assert cli.main(["run", str(suite), "--results", str(results), "--quiet", "--threads", "1"]) == 0
    frame = load_results(results / "blur")
    assert len(frame) == 2 and frame["accuracy"].between(0, 1).all()


# ---- DeepCluster's settings


def test_deepcluster_defaults_follow_caron_et_al() -> None:
    hyper = resolve("deepcluster", PretrainingConfig(), 10)
    assert (hyper.batch_size, hyper.lr, hyper.weight_decay, hyper.momentum) == (256, 0.05, 1e-5, 0.9)
    assert hyper.schedule == "constant" and hyper.clusters == 100 and hyper.crop_scale == (0.08, 1.0)
    assert resolve("deepcluster", PretrainingConfig(crop_scale=(0.2, 1.0)), 10).crop_scale == (0.2, 1.0)
    assert resolve("deepcluster", PretrainingConfig(batch_size=512), 10).batch_size == 512
    simsiam = resolve("simsiam", PretrainingConfig(), 10)
    assert simsiam.batch_size == 512 and simsiam.crop_scale is None


def test_crop_scale_is_checked() -> None:
    from benchmark.config import CellConfig

    cell = {"dataset": "digits", "backbone": "small_cnn", "strategy": "random",
            "budget": {"initial": 10, "query": 10, "rounds": 1}, "pretraining": {"crop_scale": (0.2, 1.0)}}
    assert CellConfig.model_validate({**cell, "init": "deepcluster"}).pretraining.crop_scale == (0.2, 1.0)
    with pytest.raises(ValidationError, match="deepcluster only"):
        CellConfig.model_validate({**cell, "init": "simsiam"})
    for bad in ((0.0, 1.0), (0.5, 0.2), (0.2, 1.5)):
        with pytest.raises(ValidationError, match="crop_scale"):
            PretrainingConfig(crop_scale=bad)


def test_deepcluster_top_layer_has_no_momentum_and_crop_uses_the_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    hyper = resolve("deepcluster", PretrainingConfig(), 10)
    top = torch.nn.Linear(4, 3)
    group = deepcluster_module.make_top_sgd(top, hyper).param_groups[0]
    assert group["momentum"] == 0.0 and group["lr"] == 0.05 and group["weight_decay"] == 1e-5
    seen: list[Any] = []
    real = deepcluster_module.random_resized_crop

    def spy(x: torch.Tensor, generator: torch.Generator, scale: tuple[float, float]) -> torch.Tensor:
        seen.append(scale)
        return real(x, generator, scale=scale)

    monkeypatch.setattr(deepcluster_module, "random_resized_crop", spy)
    images = torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8)
    deepcluster_module.augment(images, False, torch.Generator().manual_seed(0))
    deepcluster_module.augment(images, False, torch.Generator().manual_seed(0), (0.3, 0.9))
    assert seen == [(0.08, 1.0), (0.3, 0.9)]


def test_cache_key_covers_the_recipe_version_and_crop_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    base = PretrainingConfig()
    before = cache_key("digits", "small_cnn", "simsiam", 0, base, True)
    monkeypatch.setitem(versions.INIT_VERSIONS, "simsiam", versions.INIT_VERSIONS["simsiam"] + 1)
    assert cache_key("digits", "small_cnn", "simsiam", 0, base, True) != before  # one version: the method's
    keys = {cache_key("digits", "small_cnn", "deepcluster", 0, base, True),
            cache_key("digits", "small_cnn", "deepcluster", 0, PretrainingConfig(crop_scale=(0.2, 1.0)), True),
            cache_key("digits", "small_cnn", "deepcluster", 0, PretrainingConfig(batch_size=256), True)}
    assert len(keys) == 3
