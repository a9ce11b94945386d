"""Training-pool views: class imbalance (seed 000) and redundancy (seed 001 A.15)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.config import RedundancyConfig, ViewConfig
from benchmark.data import dataset_info
from benchmark.data.base import ImageDataset, from_arrays
from benchmark.data.views import apply_view, imbalance_counts, view_pool_indices, view_pool_size
from benchmark.errors import ConfigError


def balanced_labels(per_class: int, num_classes: int) -> np.ndarray:
    # interleaved (0, 1, 2, ..., 0, 1, 2, ...) so that indices and classes are not aligned
    return np.tile(np.arange(num_classes), per_class).astype(np.int64)


def small_dataset(per_class: int = 20, num_classes: int = 4) -> ImageDataset:
    labels = torch.from_numpy(balanced_labels(per_class, num_classes))
    n = len(labels)
    # every image is distinct: its first pixel encodes its index
    train_x = torch.randint(0, 256, (n, 3, 4, 4), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    train_x[:, 0, 0, 0] = torch.arange(n) % 256
    train_x[:, 1, 0, 0] = torch.arange(n) // 256
    test_x = torch.zeros((5, 3, 4, 4), dtype=torch.uint8)
    return from_arrays("toy", train_x, labels, test_x, torch.arange(5) % num_classes, num_classes)


def counts_of(labels: np.ndarray, num_classes: int) -> list[int]:
    return np.bincount(labels, minlength=num_classes).tolist()


def test_ratio_10_on_balanced_pool_is_seed000_profile() -> None:
    labels = balanced_labels(5000, 10)
    pool = view_pool_indices(labels, 10, ViewConfig(imbalance=10), seed=0)
    # seed 000's class_imbalance_vgg.py: 5000, 4500, ..., 500
    assert counts_of(labels[pool], 10) == [5000 - 500 * c for c in range(10)]
    assert len(np.unique(pool)) == len(pool)
    assert view_pool_size(dataset_info("cifar10"), ViewConfig(imbalance=10)) == 27500


def test_ratio_uses_smallest_class_and_floors() -> None:
    assert imbalance_counts([131, 140, 150], 3.0) == [131, 87, 43]  # 131 * (1, 2/3, 1/3), floored
    assert imbalance_counts([10, 10], 1.0) == [10, 10]
    with pytest.raises(ConfigError, match="ratio <= 10"):
        imbalance_counts([10, 10, 10], 20.0)


def test_explicit_counts_and_errors() -> None:
    labels = balanced_labels(10, 4)
    pool = view_pool_indices(labels, 4, ViewConfig(imbalance=[10, 0, 3, 7]), seed=1)
    assert counts_of(labels[pool], 4) == [10, 0, 3, 7]
    with pytest.raises(ConfigError, match="3 per-class counts given but the dataset has 4 classes"):
        view_pool_indices(labels, 4, ViewConfig(imbalance=[1, 2, 3]), seed=0)
    with pytest.raises(ConfigError, match="class 1 wants 11 but has 10"):
        view_pool_indices(labels, 4, ViewConfig(imbalance=[1, 11, 3, 4]), seed=0)
    with pytest.raises(ConfigError, match="class 1 wants 200"):
        view_pool_size(dataset_info("digits"), ViewConfig(imbalance=[1, 200, 1, 1, 1, 1, 1, 1, 1, 1]))


def test_redundancy_sizes_and_exact_duplicates() -> None:
    data = small_dataset(per_class=20, num_classes=4)
    view = ViewConfig(redundancy=RedundancyConfig(unique=15, copies=3))
    viewed = apply_view(data, view, seed=4)
    assert viewed.train_x.shape == (45, 3, 4, 4) and viewed.train_y.shape == (45,)
    distinct = torch.unique(viewed.train_x.reshape(45, -1), dim=0)
    assert distinct.shape[0] == 15
    for k in range(1, 3):
        assert torch.equal(viewed.train_x[k * 15:(k + 1) * 15], viewed.train_x[:15])
        assert torch.equal(viewed.train_y[k * 15:(k + 1) * 15], viewed.train_y[:15])
    assert torch.equal(viewed.test_x, data.test_x) and viewed.mean == data.mean and viewed.std == data.std
    assert view_pool_size({"n_train": 80, "num_classes": 4, "class_counts": [20] * 4}, view) == 45
    with pytest.raises(ConfigError, match=r"unique is 81 .* has only 80"):
        apply_view(data, ViewConfig(redundancy=RedundancyConfig(unique=81, copies=2)), seed=0)


def test_imbalance_then_redundancy() -> None:
    labels = balanced_labels(30, 3)
    view = ViewConfig(imbalance=[30, 20, 10], redundancy=RedundancyConfig(unique=50, copies=2))
    pool = view_pool_indices(labels, 3, view, seed=2)
    assert len(pool) == 100 and len(np.unique(pool)) == 50
    kept = counts_of(labels[np.unique(pool)], 3)
    assert all(k <= c for k, c in zip(kept, [30, 20, 10], strict=True))
    assert view_pool_size({"n_train": 90, "num_classes": 3, "class_counts": [30] * 3}, view) == 100
    with pytest.raises(ConfigError, match=r"after view\.imbalance has only 60"):
        view_pool_size({"n_train": 90, "num_classes": 3, "class_counts": [30] * 3},
                       ViewConfig(imbalance=[30, 20, 10], redundancy=RedundancyConfig(unique=61, copies=2)))


def test_same_seed_same_pool_other_seed_other_pool() -> None:
    labels = balanced_labels(50, 5)
    view = ViewConfig(imbalance=4, redundancy=RedundancyConfig(unique=60, copies=2))
    first = view_pool_indices(labels, 5, view, seed=7)
    assert np.array_equal(first, view_pool_indices(labels, 5, view, seed=7))
    assert not np.array_equal(first, view_pool_indices(labels, 5, view, seed=8))


def test_no_view_is_identity_and_size_is_static() -> None:
    data = small_dataset()
    assert apply_view(data, None, seed=0) is data
    assert view_pool_size(dataset_info("cifar10"), None) == 50000
    # an imbalance ratio needs the class sizes: unknown without them
    assert view_pool_size({"n_train": 100, "num_classes": 2, "class_counts": None}, ViewConfig(imbalance=2)) is None
    assert view_pool_size({"n_train": 100, "num_classes": 2, "class_counts": None},
                          ViewConfig(imbalance=[3, 4])) == 7


def test_view_on_digits_matches_static_size(tmp_path: Path) -> None:
    from benchmark.data.loading import load_dataset

    data = load_dataset("digits", tmp_path)
    view = ViewConfig(imbalance=10)
    viewed = apply_view(data, view, seed=3)
    # smallest digits class has 131 train images: 131 * (1 - 0.1 c), floored
    assert counts_of(viewed.train_y.numpy(), 10) == [131, 117, 104, 91, 78, 65, 52, 39, 26, 13]
    assert len(viewed.train_y) == view_pool_size(dataset_info("digits"), view)
    # every kept image is one of the pool's, with its own label
    pool = view_pool_indices(data.train_y.numpy(), 10, view, seed=3)
    assert torch.equal(viewed.train_x, data.train_x[torch.from_numpy(pool)])
    assert torch.equal(viewed.train_y, data.train_y[torch.from_numpy(pool)])
