"""scikit-learn's embedded handwritten digits: the offline default dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmark.data.base import ImageDataset, from_arrays

# The train/test split is fixed (not the cell's seed): every cell sees the same pool.
SPLIT_SEED = 0
TEST_FRACTION = 0.25


def load_digits_dataset(data_dir: Path | None = None) -> ImageDataset:
    """1,347 train / 450 test images, stratified, 8x8 grey levels 0..16 scaled to uint8."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.clip(bunch.images * 16.0, 0, 255).astype(np.uint8)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, labels, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )
    return from_arrays(
        "digits", torch.from_numpy(x_tr), torch.from_numpy(y_tr),
        torch.from_numpy(x_te), torch.from_numpy(y_te), num_classes=10,
    )
