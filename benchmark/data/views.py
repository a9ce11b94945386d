"""Views: a modified training pool (class imbalance, redundancy); the test split never changes.

Class imbalance is built for seed 000's ablation, whose README names the script
("Class Imbalance VGG16/class_imbalance_vgg.py") but gives neither the dataset nor
the class sizes. alb's profile is its own choice, declared as an assumption in the
suite: class sizes decreasing *linearly* with the class index from the largest to
largest / r (ratio 10 on CIFAR-10: 5000, 4500, ..., 500). A ratio r keeps

    n_c = floor(n_max * (1 - (1 - 1/r) * c / (C - 1)))

images of class c (class 0 the largest, class C-1 has floor(n_max / r)), where
n_max is the smallest original class size so that every class can supply its
share. An explicit
list gives the count of every class instead. Within a class the kept images
are random.

Redundancy follows seed 001, appendix A.15 ("a chosen amount of unique
data-points ... repeated a given number of times"; 6000 unique, 2x and 20x):
``unique`` distinct random images of the (possibly imbalanced) pool are kept and
each appears ``copies`` times, so the pool has unique x copies entries whose
duplicates are exact copies (no augmentation is baked in).

Both can be combined: imbalance first, then redundancy. All choices draw from
one numpy generator derived from the cell's seed for the purpose "view", so the
pool depends only on (dataset, view, seed), never on the strategy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.data.view_config import ViewConfig
from benchmark.errors import ConfigError
from benchmark.seeding import numpy_rng

if TYPE_CHECKING:
    from benchmark.data.base import ImageDataset


def imbalance_counts(class_sizes: Sequence[int], imbalance: float | Sequence[int]) -> list[int]:
    """Images kept per class for an imbalance ratio or explicit counts; ConfigError if infeasible."""
    sizes = [int(s) for s in class_sizes]
    num_classes = len(sizes)
    if not isinstance(imbalance, int | float):
        counts = [int(c) for c in imbalance]
        if len(counts) != num_classes:
            raise ConfigError(f"view.imbalance: {len(counts)} per-class counts given but the dataset has "
                              f"{num_classes} classes; give exactly one count per class, in class order")
        too_many = [f"class {c} wants {want} but has {have}"
                    for c, (want, have) in enumerate(zip(counts, sizes, strict=True)) if want > have]
        if too_many:
            raise ConfigError(f"view.imbalance: counts exceed the class sizes of the training pool "
                              f"({'; '.join(too_many[:5])}); lower them (class sizes: {sizes})")
        return counts
    ratio = Fraction(imbalance)
    if ratio < 1:
        raise ConfigError(f"view.imbalance: a ratio must be >= 1 (largest / smallest class), got {imbalance}")
    n_max = min(sizes)
    if num_classes == 1:
        return [n_max]
    counts = [int(n_max * (1 - (1 - 1 / ratio) * Fraction(c, num_classes - 1))) for c in range(num_classes)]
    if counts[-1] < 1:
        raise ConfigError(f"view.imbalance: ratio {imbalance} leaves class {num_classes - 1} with no images "
                          f"(the smallest class has {n_max}); use a ratio <= {n_max}")
    return counts


def view_pool_indices(train_labels: np.ndarray, num_classes: int, view: ViewConfig, seed: int) -> np.ndarray:
    """Indices into the original train pool that form the view's pool (repeats for redundancy), int64."""
    labels = np.asarray(train_labels, dtype=np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"train labels must lie in 0..{num_classes - 1}")
    rng = numpy_rng(seed, 0, "view")  # independent of every other random choice of the cell
    pool = np.arange(len(labels), dtype=np.int64)
    if view.imbalance is not None:
        counts = imbalance_counts(np.bincount(labels, minlength=num_classes).tolist(), view.imbalance)
        kept = [members[rng.permutation(len(members))[:count]]
                for members, count in ((np.flatnonzero(labels == c), count) for c, count in enumerate(counts))]
        pool = np.sort(np.concatenate(kept)).astype(np.int64)
    if view.redundancy is not None:
        unique, copies = view.redundancy.unique, view.redundancy.copies
        if unique > len(pool):
            raise ConfigError(f"view.redundancy.unique is {unique} but the training pool"
                              f"{' after view.imbalance' if view.imbalance is not None else ''} has only "
                              f"{len(pool)} images; lower it")
        distinct = np.sort(pool[rng.permutation(len(pool))[:unique]])
        pool = np.tile(distinct, copies)  # copy k of image i sits at k * unique + i
    return pool


def view_pool_size(info: dict[str, Any], view: ViewConfig | None) -> int | None:
    """The view's pool size from a dataset's static info (see benchmark.data.dataset_info).

    None when it cannot be known without the labels (an imbalance ratio on a dataset without
    class_counts). Raises ConfigError for a view that cannot fit the dataset when that is known.
    """
    if view is None:
        return int(info["n_train"])
    class_counts = info.get("class_counts")
    size: int | None = int(info["n_train"])
    if view.imbalance is not None:
        if class_counts is not None:
            size = sum(imbalance_counts(class_counts, view.imbalance))
        elif isinstance(view.imbalance, list):
            if len(view.imbalance) != info["num_classes"]:
                imbalance_counts([0] * info["num_classes"], view.imbalance)  # raises the length error
            size = sum(view.imbalance)
        else:
            size = None
    if view.redundancy is not None:
        if size is not None and view.redundancy.unique > size:
            raise ConfigError(f"view.redundancy.unique is {view.redundancy.unique} but the training pool"
                              f"{' after view.imbalance' if view.imbalance is not None else ''} has only "
                              f"{size} images; lower it")
        size = view.redundancy.unique * view.redundancy.copies
    return size


def apply_view(data: ImageDataset, view: ViewConfig | None, seed: int) -> ImageDataset:
    """The dataset with the view's training pool; test split, mean and std unchanged.

    The normalisation statistics stay those of the original pool: they describe the data
    source, keep views of one dataset comparable, and are not skewed by duplicated images.
    """
    if view is None or (view.imbalance is None and view.redundancy is None):
        return data
    import torch

    indices = torch.from_numpy(view_pool_indices(data.train_y.numpy(), data.num_classes, view, seed))
    return dataclasses.replace(data, train_x=data.train_x[indices].contiguous(), train_y=data.train_y[indices])
