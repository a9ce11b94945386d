"""Real datasets through torchvision, downloaded into the data directory on first use."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.data.base import ImageDataset, from_arrays
from benchmark.errors import DatasetUnavailableError

# What a user without internet must fetch by hand, and where torchvision expects it.
MANUAL_DOWNLOAD = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/ (4 *-ubyte.gz files)", "MNIST/raw/"),
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ (4 *-ubyte.gz files)",
                      "FashionMNIST/raw/"),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz"),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "cifar-100-python.tar.gz"),
    "svhn": ("http://ufldl.stanford.edu/housenumbers/train_32x32.mat and test_32x32.mat",
             "train_32x32.mat, test_32x32.mat"),
    "stl10": ("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz", "stl10_binary/ (extracted)"),
    "caltech101": ("https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip (extract it and the "
                   "101_ObjectCategories.tar.gz inside)", "caltech101/101_ObjectCategories/"),
    "tiny_imagenet": ("http://cs231n.stanford.edu/tiny-imagenet-200.zip", "tiny-imagenet-200/ (extracted)"),
}


def _fetch(name: str, data_dir: Path, build: Callable[[bool], tuple[Any, Any]]) -> tuple[Any, Any]:
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        return build(True)
    except Exception as exc:  # torchvision raises URLError, RuntimeError, OSError...
        url, where = MANUAL_DOWNLOAD[name]
        raise DatasetUnavailableError(
            f"dataset '{name}' is not in {data_dir} and could not be downloaded ({exc.__class__.__name__}: "
            f"{exc}). Download {url} and place it as {data_dir / where}, or point --data-dir / ALB_DATA "
            "at a folder that already holds it."
        ) from None


def _as_nchw(images: Any) -> torch.Tensor:
    array = np.asarray(images, dtype=np.uint8)
    if array.ndim == 3:  # N H W (grey)
        array = array[:, None]
    elif array.shape[-1] in (1, 3):  # N H W C
        array = array.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(array))


def _labels(values: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.int64))


def _split_dataset(name: str, cls_name: str, data_dir: Path, num_classes: int) -> ImageDataset:
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    train, test = _fetch(name, data_dir, lambda dl: (cls(str(data_dir), train=True, download=dl),
                                                     cls(str(data_dir), train=False, download=dl)))
    return from_arrays(name, _as_nchw(train.data), _labels(train.targets),
                       _as_nchw(test.data), _labels(test.targets), num_classes)


def load_mnist(data_dir: Path) -> ImageDataset:
    return _split_dataset("mnist", "MNIST", data_dir, 10)


def load_fashion_mnist(data_dir: Path) -> ImageDataset:
    return _split_dataset("fashion_mnist", "FashionMNIST", data_dir, 10)


def load_cifar10(data_dir: Path) -> ImageDataset:
    return _split_dataset("cifar10", "CIFAR10", data_dir, 10)


def load_cifar100(data_dir: Path) -> ImageDataset:
    return _split_dataset("cifar100", "CIFAR100", data_dir, 100)


def load_svhn(data_dir: Path) -> ImageDataset:
    import torchvision.datasets as tvd

    train, test = _fetch("svhn", data_dir, lambda dl: (tvd.SVHN(str(data_dir), split="train", download=dl),
                                                       tvd.SVHN(str(data_dir), split="test", download=dl)))
    # torchvision's SVHN stores NCHW already
    return from_arrays("svhn", torch.from_numpy(np.ascontiguousarray(train.data)), _labels(train.labels),
                       torch.from_numpy(np.ascontiguousarray(test.data)), _labels(test.labels), 10)
