"""The in-memory form every detection dataset is loaded into."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DetectionDataset:
    """Train pool and test split as uint8 NCHW tensors (every image resized to one square size) and, per
    image, its boxes (float32 x1, y1, x2, y2 in pixels of that size), labels (int64, 1..C; 0 is the
    detector's background) and ``difficult`` flags (VOC's; evaluation ignores those objects)."""

    name: str
    train_x: torch.Tensor
    train_boxes: list[torch.Tensor]
    train_labels: list[torch.Tensor]
    train_difficult: list[torch.Tensor]
    test_x: torch.Tensor
    test_boxes: list[torch.Tensor]
    test_labels: list[torch.Tensor]
    test_difficult: list[torch.Tensor]
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        for split, x, boxes, labels, difficult in (
                ("train", self.train_x, self.train_boxes, self.train_labels, self.train_difficult),
                ("test", self.test_x, self.test_boxes, self.test_labels, self.test_difficult)):
            if x.dtype != torch.uint8 or x.ndim != 4:
                raise ValueError(f"{self.name}: {split} images must be uint8 NCHW, got {x.dtype} {tuple(x.shape)}")
            if not len(boxes) == len(labels) == len(difficult) == x.shape[0]:
                raise ValueError(f"{self.name}: {split} needs one box list per image")
            for b, lab in zip(boxes, labels, strict=True):
                if b.ndim != 2 or b.shape[1] != 4 or lab.shape != (b.shape[0],):
                    raise ValueError(f"{self.name}: {split} boxes must be (K, 4) with K labels")
                if lab.numel() and (int(lab.min()) < 1 or int(lab.max()) > len(self.class_names)):
                    raise ValueError(f"{self.name}: {split} labels must be 1..{len(self.class_names)}")

    @property
    def num_classes(self) -> int:
        """Object classes, without the background."""
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[2])

    @property
    def train_y(self) -> torch.Tensor:
        """One number per pool image (its box count): the pool's size for code that counts images."""
        return torch.tensor([len(b) for b in self.train_boxes], dtype=torch.int64)
