"""A dataset: a callable (data_dir) -> benchmark.data.base.ImageDataset with uint8 NCHW images."""

from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

from benchmark.data.base import ImageDataset, from_arrays


def digits_inverted(data_dir: Path) -> ImageDataset:
    """scikit-learn's digits (shipped with it: nothing to download), intensities inverted; the first 1,347
    images are the pool, the last 450 the test split."""
    digits = load_digits()
    images = (255 - np.round(digits.images * (255 / 16))).astype(np.uint8)[:, None]
    x, y = torch.from_numpy(images), torch.from_numpy(digits.target.astype(np.int64))
    return from_arrays("digits_inverted", x[:1347], y[:1347], x[1347:], y[1347:], num_classes=10)
