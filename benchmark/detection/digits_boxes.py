"""The embedded detection set: scikit-learn's real handwritten digits placed on larger canvases.

Each canvas holds 1..MAX_DIGITS digits, each scaled by 2 or 3 (16 or 24 px), at random places; a digit may
overlap the ones placed before it (pasted by the pixel-wise maximum, so both stay visible). A box is the
tight bounding box of the digit's ink (its non-zero pixels) where it was pasted, its class the digit + 1
(0 is the detector's background). Everything follows from fixed seeds, so every cell sees the same images;
pool canvases use only the digits of the classification split's train part, test canvases only its test
part (benchmark.data.digits), so no handwritten digit is in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from benchmark.detection.dataset import DetectionDataset

CANVAS = 64
N_TRAIN = 600
N_TEST = 200
MAX_DIGITS = 4
SCALES = (2, 3)
SEEDS = {"train": 1, "test": 2}  # fixed: the data never depends on a cell's seed
# the most a later digit's box may be covered by an earlier one (IoU): overlaps happen, no digit hides another
MAX_IOU = 0.3
CLASS_NAMES = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class Placement:
    """Where one digit went: its index among the split's digits, scale and top-left corner."""

    digit: int
    scale: int
    top: int
    left: int


def ink_box(image: np.ndarray) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2) of the non-zero pixels of a 2-d image, x2 and y2 exclusive (pixel edges)."""
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def box_iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def scaled(digit: np.ndarray, scale: int) -> np.ndarray:
    """An 8x8 digit enlarged by pixel repetition (no interpolation: the ink box stays exact)."""
    return np.kron(digit, np.ones((scale, scale), dtype=digit.dtype))


def place_digits(n_digits: int, n_images: int, seed: int) -> list[list[Placement]]:
    """The placements of every canvas: a pure function of the number of available digits and the seed."""
    rng = np.random.default_rng(seed)
    canvases: list[list[Placement]] = []
    for _ in range(n_images):
        count = int(rng.integers(1, MAX_DIGITS + 1))
        placed: list[Placement] = []
        boxes: list[tuple[int, int, int, int]] = []
        for _attempt in range(50):
            if len(placed) == count:
                break
            scale = int(rng.choice(SCALES))
            side = 8 * scale
            top, left = (int(v) for v in rng.integers(0, CANVAS - side + 1, size=2))
            box = (left, top, left + side, top + side)
            if any(box_iou(box, other) > MAX_IOU for other in boxes):
                continue
            placed.append(Placement(int(rng.integers(n_digits)), scale, top, left))
            boxes.append(box)
        canvases.append(placed)
    return canvases


def render(digits: np.ndarray, labels: np.ndarray, placements: list[Placement]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(canvas uint8 HxW, boxes float32 Kx4, labels int64 K) of one canvas."""
    canvas = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    boxes, classes = [], []
    for p in placements:
        digit = scaled(digits[p.digit], p.scale)
        if not digit.any():
            continue
        h, w = digit.shape
        region = canvas[p.top:p.top + h, p.left:p.left + w]
        np.maximum(region, digit, out=region)
        x1, y1, x2, y2 = ink_box(digit)
        boxes.append((p.left + x1, p.top + y1, p.left + x2, p.top + y2))
        classes.append(int(labels[p.digit]) + 1)
    return canvas, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64)


def digit_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The 8x8 uint8 digits and labels of benchmark.data.digits' fixed train and test split."""
    from benchmark.data.digits import load_digits_dataset

    data = load_digits_dataset()
    return {"train": (data.train_x[:, 0].numpy(), data.train_y.numpy()),
            "test": (data.test_x[:, 0].numpy(), data.test_y.numpy())}


def build_split(split: str, n_images: int) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Images (N, 1, CANVAS, CANVAS) uint8, boxes and labels of one split."""
    digits, labels = digit_splits()[split]
    images, boxes, classes = [], [], []
    for placements in place_digits(len(digits), n_images, SEEDS[split]):
        canvas, b, c = render(digits, labels, placements)
        images.append(canvas)
        boxes.append(b)
        classes.append(c)
    return np.stack(images)[:, None], boxes, classes


def load_digits_detection(data_dir: Path | None = None) -> DetectionDataset:
    """The embedded detection set as a DetectionDataset (600 pool / 200 test canvases, 64x64 grey)."""
    import torch

    from benchmark.detection.dataset import DetectionDataset

    del data_dir  # embedded: nothing to download

    def split(name: str, n: int) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        x, b, c = build_split(name, n)
        return (torch.from_numpy(x), [torch.from_numpy(v) for v in b], [torch.from_numpy(v) for v in c],
                [torch.zeros(len(v), dtype=torch.bool) for v in c])

    return DetectionDataset("digits_detection", *split("train", N_TRAIN), *split("test", N_TEST), CLASS_NAMES)
