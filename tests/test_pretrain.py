"""Self-supervised pre-training (simsiam, deepcluster, rotation), its disk cache and checkpoint loading."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from benchmark.config import PretrainingConfig
from benchmark.data.base import ImageDataset, from_arrays
from benchmark.data.digits import load_digits_dataset
from benchmark.errors import ConfigError
from benchmark.models.base import Backbone, build_backbone
from benchmark.pretrain import apply_backbone_state, initial_backbone_state
from benchmark.pretrain import deepcluster as deepcluster_module
from benchmark.pretrain import rotation as rotation_module
from benchmark.pretrain.cache import cache_key
from benchmark.pretrain.checkpoint import CheckpointError
from benchmark.pretrain.initial import pretrainer
from benchmark.pretrain.kmeans import balanced_indices, pca_whiten
from benchmark.pretrain.rotation import rotate_all
from benchmark.pretrain.settings import resolve
from benchmark.pretrain.simsiam import negative_cosine, simsiam_loss
from benchmark.training.augment import Normalizer
from benchmark.training.execution import FP32_CPU

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # deterministic and fair on a shared CPU


@pytest.fixture(scope="module")
def digits() -> ImageDataset:
    return load_digits_dataset()


@pytest.fixture(scope="module")
def small_digits(digits: ImageDataset) -> ImageDataset:
    """The first 128 training images as a dataset of their own (pre-training sees only train_x)."""
    return from_arrays("digits128", digits.train_x[:128], digits.train_y[:128], digits.test_x[:16],
                       digits.test_y[:16], digits.num_classes)


def _model(seed: int = 0) -> Backbone:
    torch.manual_seed(seed)
    return build_backbone("small_cnn", 10, 1)


def _run(method: str, images: torch.Tensor, data: ImageDataset, epochs: int, model: Backbone | None = None,
         **cfg: Any) -> tuple[Backbone, list[float]]:
    model = model or _model()
    generator = torch.Generator().manual_seed(0)
    normalize = Normalizer(data.mean, data.std, CPU)
    settings = PretrainingConfig(epochs=epochs, batch_size=64, **cfg)
    losses = pretrainer(method)(model, images, normalize, False, settings, 10, generator, FP32_CPU, None)
    return model, losses


def _backbone_tensors(model: Backbone) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("head.")}


# ---- each method trains the backbone


@pytest.mark.parametrize("method", ["simsiam", "deepcluster", "rotation"])
def test_method_changes_backbone_and_reports_finite_losses(method: str, small_digits: ImageDataset) -> None:
    model = _model()
    before = _backbone_tensors(model)
    head_before = model.head.weight.clone()
    seen: list[tuple[int, int, float]] = []
    generator = torch.Generator().manual_seed(0)
    normalize = Normalizer(small_digits.mean, small_digits.std, CPU)
    cfg = PretrainingConfig(epochs=2, batch_size=64, clusters=10)
    losses = pretrainer(method)(model, small_digits.train_x, normalize, False, cfg, 10, generator, FP32_CPU,
                                lambda e, n, loss: seen.append((e, n, loss)))
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert [(e, n) for e, n, _ in seen] == [(1, 2), (2, 2)] and [v for *_, v in seen] == losses
    after = model.state_dict()
    changed = [k for k, v in before.items() if v.is_floating_point() and not torch.equal(v, after[k])]
    assert "body.0.0.weight" in changed and "body.3.0.weight" in changed
    assert torch.equal(model.head.weight, head_before), "pre-training must not touch the supervised classifier"
    if method == "simsiam":
        assert all(-1.0 <= v <= 1.0 for v in losses)


def test_rotation_loss_decreases(digits: ImageDataset) -> None:
    _, losses = _run("rotation", digits.train_x[:256], digits, epochs=3)
    assert losses[-1] < losses[0] - 0.1, losses


def test_deepcluster_loss_decreases_on_separable_images(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four distinct stroke patterns with noise: the clusters are easy, so the re-initialised classifier
    learns them faster each epoch as the backbone improves. (Whitening a 128-d embedding of 256 images
    lifts its noise directions to the clusters' scale, so k-means sees noise: L2 normalisation only.)"""
    monkeypatch.setattr(deepcluster_module, "WHITEN", False)
    gen = torch.Generator().manual_seed(0)
    patterns = torch.zeros(4, 1, 8, 8)
    patterns[0, :, 1:7, 2] = 1
    patterns[1, :, 2, 1:7] = 1
    patterns[2, :, range(1, 7), range(1, 7)] = 1
    patterns[3, :, 1:7, 5:7] = 1
    labels = torch.arange(4).repeat(64)
    noisy = (patterns[labels] * 200 + torch.rand(256, 1, 8, 8, generator=gen) * 50).to(torch.uint8)
    data = from_arrays("patterns", noisy, labels, noisy[:8], labels[:8], 4)
    _, losses = _run("deepcluster", data.train_x, data, epochs=4, clusters=4, lr=0.2)
    assert losses[-1] < losses[0] - 0.1, losses


def test_deepcluster_reclusters_every_epoch(small_digits: ImageDataset, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[torch.Tensor] = []
    real = deepcluster_module.kmeans

    def spy(x: torch.Tensor, k: int, generator: torch.Generator, **kw: Any) -> Any:
        calls.append(x.clone())
        return real(x, k, generator, **kw)

    monkeypatch.setattr(deepcluster_module, "kmeans", spy)
    top_inits: list[float] = []
    real_init = deepcluster_module.init_linear

    def init_spy(layer: torch.nn.Linear, generator: torch.Generator, std: float | None = None) -> None:
        real_init(layer, generator, std)
        top_inits.append(float(layer.weight.detach().std()))

    monkeypatch.setattr(deepcluster_module, "init_linear", init_spy)
    _run("deepcluster", small_digits.train_x, small_digits, epochs=3, clusters=10)
    assert len(calls) == 3 and len(top_inits) == 3
    assert calls[0].shape[0] == 128 and torch.allclose(calls[0].norm(dim=1), torch.ones(128)), "L2-normalised"
    assert not torch.equal(calls[0], calls[1]) and not torch.equal(calls[1], calls[2]), "features re-computed"
    assert all(abs(s - 0.01) < 0.003 for s in top_inits)


# ---- the pure parts


def test_negative_cosine_range_and_stop_gradient() -> None:
    p = torch.randn(8, 5, requires_grad=True)
    z = torch.randn(8, 5, requires_grad=True)
    loss = negative_cosine(p, z)
    assert -1 <= float(loss.detach()) <= 1
    loss.backward()
    assert z.grad is None, "the target branch must be behind a stop-gradient"
    assert p.grad is not None and p.grad.abs().sum() > 0
    same = torch.randn(4, 3)
    assert float(negative_cosine(same, 2 * same)) == pytest.approx(-1.0)
    assert float(negative_cosine(same, -same)) == pytest.approx(1.0)


def test_simsiam_loss_is_symmetric_and_gradients_reach_only_predictions() -> None:
    p1, p2, z1, z2 = (torch.randn(6, 4, requires_grad=True) for _ in range(4))
    loss = simsiam_loss(p1, p2, z1, z2)
    with torch.no_grad():
        assert float(loss) == pytest.approx(float(simsiam_loss(p2, p1, z2, z1)))
        assert float(loss) == pytest.approx(0.5 * float(negative_cosine(p1, z2) + negative_cosine(p2, z1)))
    loss.backward()
    assert z1.grad is None and z2.grad is None
    assert p1.grad is not None and p2.grad is not None


def test_rotation_labels_match_the_rotation_applied() -> None:
    images = torch.randint(0, 255, (3, 2, 5, 5), dtype=torch.uint8)
    rotated, labels = rotate_all(images)
    assert rotated.shape == (12, 2, 5, 5) and labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    for out, label, source in zip(rotated, labels, images.repeat(4, 1, 1, 1), strict=True):
        expected = np.rot90(source.numpy(), k=int(label), axes=(1, 2))
        assert np.array_equal(out.numpy(), expected)
    assert not torch.equal(rotated[3], rotated[0])
    with pytest.raises(ValueError, match="square"):
        rotate_all(torch.zeros(1, 1, 4, 6, dtype=torch.uint8))


def test_balanced_indices_sample_pseudo_classes_uniformly() -> None:
    labels = torch.tensor([0] * 90 + [2] * 10)  # cluster 1 is empty
    picked = balanced_indices(labels, 3, 100, torch.Generator().manual_seed(0))
    drawn = torch.bincount(labels[picked], minlength=3).tolist()
    assert drawn == [50, 0, 50]


def test_pca_whiten_gives_unit_covariance() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(500, 6, generator=gen) @ torch.randn(6, 6, generator=gen) + 3
    w = pca_whiten(x, dim=4)
    cov = torch.cov(w.T)
    assert w.shape == (500, 4) and torch.allclose(cov, torch.eye(4), atol=1e-3)


def test_method_defaults_follow_the_papers() -> None:
    cfg = PretrainingConfig(batch_size=512)
    simsiam = resolve("simsiam", cfg, 10)
    assert simsiam.lr == pytest.approx(0.06) and simsiam.weight_decay == 1e-4 and simsiam.schedule == "cosine"
    assert resolve("deepcluster", cfg, 10).clusters == 100
    assert resolve("deepcluster", PretrainingConfig(clusters=7), 10).clusters == 7
    assert resolve("rotation", PretrainingConfig(lr=0.5, weight_decay=0.0), 10).lr == 0.5


# ---- the entry point and its cache


def _entry(init: str, data: ImageDataset, cache_dir: Path, **kw: Any) -> dict[str, torch.Tensor] | None:
    cfg = kw.pop("cfg", PretrainingConfig(epochs=1, batch_size=64))
    return initial_backbone_state(init, "small_cnn", data, False, 0, cfg, cache_dir, CPU, FP32_CPU,
                                  "digits128", **kw)


def test_cache_miss_then_hit_returns_identical_tensors(small_digits: ImageDataset, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    rng_before = torch.get_rng_state()
    first = _entry("rotation", small_digits, tmp_path)
    assert torch.equal(torch.get_rng_state(), rng_before), "pre-training must leave the global RNG alone"
    assert first is not None and not any(k.startswith("head.") for k in first)
    assert all(v.device.type == "cpu" for v in first.values())
    (weights,) = tmp_path.glob("*.pt")
    record = json.loads(weights.with_suffix(".json").read_text())
    assert record["method"] == "rotation" and len(record["losses"]) == 1 and record["seconds"] > 0
    assert record["settings"]["lr"] == 0.1

    def must_not_train(*args: Any, **kwargs: Any) -> list[float]:
        raise AssertionError("a cached result must not be pre-trained again")

    monkeypatch.setattr(rotation_module, "pretrain_rotation", must_not_train)
    second = _entry("rotation", small_digits, tmp_path)
    assert second is not None and second.keys() == first.keys()
    assert all(torch.equal(second[k], first[k]) for k in first)
    model = _model(seed=5)
    head = model.head.weight.clone()
    apply_backbone_state(model, second)
    assert torch.equal(model.body[0][0].weight, first["body.0.0.weight"]) and torch.equal(model.head.weight, head)


def test_concurrent_callers_pretrain_once(small_digits: ImageDataset, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The second caller waits on the first one's lock and then loads its result."""
    calls: list[int] = []

    def slow(*args: Any, **kwargs: Any) -> list[float]:
        calls.append(1)
        time.sleep(0.3)
        return [1.0]

    monkeypatch.setattr(rotation_module, "pretrain_rotation", slow)
    results: list[dict[str, torch.Tensor] | None] = [None, None]

    def call(i: int) -> None:
        results[i] = _entry("rotation", small_digits, tmp_path)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    first, second = results
    assert first is not None and second is not None and all(torch.equal(first[k], second[k]) for k in first)


def test_pretraining_is_deterministic(small_digits: ImageDataset, tmp_path: Path) -> None:
    a = _entry("deepcluster", small_digits, tmp_path / "a", cfg=PretrainingConfig(epochs=1, batch_size=64,
                                                                                 clusters=10))
    b = _entry("deepcluster", small_digits, tmp_path / "b", cfg=PretrainingConfig(epochs=1, batch_size=64,
                                                                                 clusters=10))
    assert a is not None and b is not None and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["body.0.0.weight"], _model().body[0][0].weight)


def test_cache_key_changes_with_every_setting() -> None:
    base = PretrainingConfig()
    ref = cache_key("digits", "small_cnn", "simsiam", 0, base, True)
    assert ref == cache_key("digits", "small_cnn", "simsiam", 0, PretrainingConfig(), True)
    variants = [cache_key("digits/imb", "small_cnn", "simsiam", 0, base, True),
                cache_key("digits", "resnet18_cifar", "simsiam", 0, base, True),
                cache_key("digits", "small_cnn", "rotation", 0, base, True),
                cache_key("digits", "small_cnn", "simsiam", 1, base, True),
                cache_key("digits", "small_cnn", "simsiam", 0, base, False)]
    for field, value in (("epochs", 3), ("batch_size", 64), ("lr", 0.5), ("weight_decay", 0.0),
                         ("momentum", 0.5), ("clusters", 20)):
        variants.append(cache_key("digits", "small_cnn", "simsiam", 0, base.model_copy(update={field: value}), True))
    assert len({ref, *variants}) == len(variants) + 1


def test_scratch_and_imagenet_without_weights(small_digits: ImageDataset, tmp_path: Path) -> None:
    assert _entry("scratch", small_digits, tmp_path) is None
    with pytest.raises(ConfigError, match="weights_dir"):
        _entry("imagenet", small_digits, tmp_path)


# ---- checkpoint:PATH


def test_checkpoint_plain_state_dict(small_digits: ImageDataset, tmp_path: Path) -> None:
    model = _model(seed=3)
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    state = _entry(f"checkpoint:{tmp_path / 'plain.pt'}", small_digits, tmp_path)
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    assert state is not None and state.keys() == expected.keys()
    assert all(torch.equal(state[k], v) for k, v in expected.items())


def test_checkpoint_wrapped_with_module_prefix(small_digits: ImageDataset, tmp_path: Path) -> None:
    model = _model(seed=4)
    wrapped = {f"module.{k}": v for k, v in model.state_dict().items()}
    wrapped["module.projector.0.weight"] = torch.zeros(3, 3)  # extra tensors are ignored
    torch.save({"epoch": 7, "state_dict": wrapped, "optimizer": {}}, tmp_path / "wrapped.pt")
    state = _entry(f"checkpoint:{tmp_path / 'wrapped.pt'}", small_digits, tmp_path)
    assert state is not None and torch.equal(state["body.0.0.weight"], model.body[0][0].weight)
    assert "projector.0.weight" not in state and not any(k.startswith("head.") for k in state)


def test_checkpoint_of_another_architecture_is_a_clear_error(small_digits: ImageDataset, tmp_path: Path) -> None:
    torch.manual_seed(0)
    other = build_backbone("resnet18_cifar", 10, 1)
    torch.save({"model": other.state_dict()}, tmp_path / "resnet.pt")
    with pytest.raises(CheckpointError) as info:
        _entry(f"checkpoint:{tmp_path / 'resnet.pt'}", small_digits, tmp_path)
    message = str(info.value)
    assert "small_cnn" in message and "missing: body.0.0.weight" in message
    assert "'resnet18_cifar' checkpoint" in message


def test_checkpoint_with_wrong_shapes_and_missing_file(small_digits: ImageDataset, tmp_path: Path) -> None:
    wide = build_backbone("small_cnn", 10, 3)  # 3 input channels, the pool has 1
    torch.save(wide.state_dict(), tmp_path / "rgb.pt")
    with pytest.raises(CheckpointError, match=r"body\.0\.0\.weight: \(32, 3, 3, 3\) in the checkpoint"):
        _entry(f"checkpoint:{tmp_path / 'rgb.pt'}", small_digits, tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        _entry(f"checkpoint:{tmp_path / 'nope.pt'}", small_digits, tmp_path)
