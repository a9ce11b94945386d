"""The in-memory form every dataset is loaded into."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageDataset:
    """Train pool and test split as uint8 NCHW tensors plus int64 labels.

    Images stay uint8 until a batch is drawn; normalisation (per-channel mean and
    std of the train pool, in [0, 1] units) happens on the training device.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        for split, x, y in (("train", self.train_x, self.train_y), ("test", self.test_x, self.test_y)):
            if x.dtype != torch.uint8 or x.ndim != 4:
                raise ValueError(f"{self.name}: {split} images must be uint8 NCHW, "
                                 f"got {x.dtype} {tuple(x.shape)}")
            if y.dtype != torch.int64 or y.shape != (x.shape[0],):
                raise ValueError(f"{self.name}: {split} labels must be int64 of length {x.shape[0]}")

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[2])


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 NCHW images, in [0, 1] units."""
    x = images.to(torch.float64) / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def from_arrays(name: str, train_x: torch.Tensor, train_y: torch.Tensor,
                test_x: torch.Tensor, test_y: torch.Tensor, num_classes: int) -> ImageDataset:
    mean, std = channel_stats(train_x)
    return ImageDataset(name, train_x.contiguous(), train_y, test_x.contiguous(), test_y,
                        num_classes, mean, std)
