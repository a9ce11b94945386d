"""Real datasets read with torchvision (CIFAR from its pickled batches), fetched by benchmark.data.fetch."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.data.base import ImageDataset, from_arrays
from benchmark.errors import AlbError, DatasetUnavailableError


def _fetch(name: str, data_dir: Path, build: Callable[[bool], tuple[Any, Any]]) -> tuple[Any, Any]:
    """The dataset's files made ready by :mod:`benchmark.data.fetch` (verified, under a lock; a no-op when
    ``alb run`` resolved them already), then read by ``build(download=False)``: torchvision never downloads."""
    from benchmark.data.fetch import ensure_dataset

    ensure_dataset(name, data_dir)
    try:
        return build(False)
    except AlbError:
        raise
    except Exception as exc:  # torchvision raises RuntimeError, OSError... for files it cannot read
        raise DatasetUnavailableError(
            f"dataset '{name}' in {data_dir} could not be read ({exc.__class__.__name__}: {exc}); delete its "
            f"files and run `alb data fetch {name} --data-dir {data_dir}`") from None


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


def _cifar_batches(folder: Path, names: list[str], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """The python-pickle batches of a CIFAR archive (whose checksum benchmark.data.fetch verified) as
    uint8 N x 3 x 32 x 32 images and labels."""
    images, labels = [], []
    for name in names:
        with (folder / name).open("rb") as handle:
            batch = pickle.load(handle, encoding="latin1")
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _cifar(name: str, folder: str, train: list[str], test: list[str], label_key: str, classes: int) -> Any:
    def load(data_dir: Path) -> ImageDataset:
        def build(_download: bool) -> tuple[Any, Any]:
            root = data_dir / folder
            return _cifar_batches(root, train, label_key), _cifar_batches(root, test, label_key)

        (x_train, y_train), (x_test, y_test) = _fetch(name, data_dir, build)
        return from_arrays(name, torch.from_numpy(x_train), torch.from_numpy(y_train), torch.from_numpy(x_test),
                           torch.from_numpy(y_test), classes)

    return load


load_cifar10 = _cifar("cifar10", "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                      "labels", 10)
load_cifar100 = _cifar("cifar100", "cifar-100-python", ["train"], ["test"], "fine_labels", 100)


def load_svhn(data_dir: Path) -> ImageDataset:
    import torchvision.datasets as tvd

    train, test = _fetch("svhn", data_dir, lambda dl: (tvd.SVHN(str(data_dir), split="train", download=dl),
                                                       tvd.SVHN(str(data_dir), split="test", download=dl)))
    # torchvision's SVHN stores NCHW already
    return from_arrays("svhn", torch.from_numpy(np.ascontiguousarray(train.data)), _labels(train.labels),
                       torch.from_numpy(np.ascontiguousarray(test.data)), _labels(test.labels), 10)
