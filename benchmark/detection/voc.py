"""Pascal VOC detection through torchvision's VOCDetection, fetched into the data directory (`alb data fetch`, or on
first use) as its data card says.

voc2007: trainval as the pool, test as the test split. voc2012: train as the pool and val as the test split,
since the 2012 test annotations are not public. Every image is resized to SIZE x SIZE (SSD300's input; the
detectors resize to their own input anyway) with its boxes, once, and cached beside the download as
``alb_voc<year>_<SIZE>.npz``. Objects marked ``difficult`` are kept with that flag: the evaluation ignores
them, as VOC's own does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.detection.dataset import DetectionDataset
from benchmark.errors import DatasetUnavailableError

SIZE = 300
CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
           "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
SPLITS = {"2007": ("trainval", "test"), "2012": ("train", "val")}
# where each split's tar is unpacked in the data directory (benchmark/data/cards.py: VOC 2007's two tars both hold
# VOCdevkit/VOC2007, so each gets its own folder)
ROOTS = {("2007", "trainval"): ("voc2007-trainval",), ("2007", "test"): ("voc2007-test",),
         ("2012", "train"): ("voc2012",), ("2012", "val"): ("voc2012",)}


def parse_objects(annotation: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """(boxes x1 y1 x2 y2 in VOC's 1-based pixels made 0-based, labels 1..20, difficult, (width, height)) of
    one VOCDetection target."""
    root = annotation["annotation"]
    size = (int(root["size"]["width"]), int(root["size"]["height"]))
    objects = root.get("object", [])
    objects = objects if isinstance(objects, list) else [objects]
    # VOC's corners are 1-based pixel numbers, inclusive: x1 - 1 and x2 are the pixel edges
    corners = ("xmin", "ymin", "xmax", "ymax")
    boxes = [[float(o["bndbox"][k]) - (1.0 if k in ("xmin", "ymin") else 0.0) for k in corners] for o in objects]
    labels = [CLASSES.index(o["name"]) + 1 for o in objects]
    difficult = [str(o.get("difficult", "0")) == "1" for o in objects]
    return (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64),
            np.asarray(difficult, bool), size)


def _fetch(year: str, image_set: str, data_dir: Path) -> Any:
    """The split through torchvision's VOCDetection (never downloading), from the folder its data card unpacks
    it into; missing files are fetched first under the data directory's lock (benchmark.data.fetch)."""
    import torchvision.datasets as tvd

    from benchmark.data.fetch import ensure_dataset

    ensure_dataset(f"voc{year}", data_dir)  # verified and unpacked (a no-op when `alb run` resolved it already)
    root = data_dir / ROOTS[year, image_set][0]
    try:
        return tvd.VOCDetection(str(root), year=year, image_set=image_set, download=False)
    except Exception as exc:  # torchvision raises RuntimeError, OSError... for an incomplete copy
        raise DatasetUnavailableError(
            f"dataset 'voc{year}': {root / 'VOCdevkit' / f'VOC{year}'} is incomplete ({exc.__class__.__name__}: "
            f"{exc}); delete {root} and fetch it again with `alb data fetch voc{year}`") from None


def _convert(voc: Any) -> dict[str, np.ndarray]:
    """Resized images and flat box arrays (with per-image offsets) of a VOCDetection split."""
    from PIL import Image

    images, boxes, labels, difficult, counts = [], [], [], [], []
    for index in range(len(voc)):
        image, target = voc[index]
        b, lab, diff, (w, h) = parse_objects(target)
        images.append(np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR), np.uint8))
        boxes.append(b * np.asarray([SIZE / w, SIZE / h, SIZE / w, SIZE / h], np.float32))
        labels.append(lab)
        difficult.append(diff)
        counts.append(len(lab))
    return {"x": np.stack(images).transpose(0, 3, 1, 2), "boxes": np.concatenate(boxes),
            "labels": np.concatenate(labels), "difficult": np.concatenate(difficult),
            "counts": np.asarray(counts, np.int64)}


def _split(year: str, image_set: str, data_dir: Path) -> dict[str, np.ndarray]:
    cache = data_dir / f"alb_voc{year}_{image_set}_{SIZE}.npz"
    if cache.is_file():
        with np.load(cache) as arrays:
            return dict(arrays)
    arrays = _convert(_fetch(year, image_set, data_dir))
    tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npz")  # workers may convert at once: own names
    np.savez(tmp, **arrays)
    tmp.replace(cache)
    return arrays


def _as_lists(arrays: dict[str, np.ndarray]) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor],
                                                      list[torch.Tensor]]:
    ends = np.cumsum(arrays["counts"])
    starts = ends - arrays["counts"]

    def cut(values: np.ndarray) -> list[torch.Tensor]:
        return [torch.from_numpy(np.ascontiguousarray(values[s:e])) for s, e in zip(starts, ends, strict=True)]

    return (torch.from_numpy(np.ascontiguousarray(arrays["x"])), cut(arrays["boxes"]), cut(arrays["labels"]),
            cut(arrays["difficult"]))


def load_voc(year: str, data_dir: Path) -> DetectionDataset:
    pool_set, test_set = SPLITS[year]
    return DetectionDataset(f"voc{year}", *_as_lists(_split(year, pool_set, data_dir)),
                            *_as_lists(_split(year, test_set, data_dir)), CLASSES)


def load_voc2007(data_dir: Path) -> DetectionDataset:
    return load_voc("2007", data_dir)


def load_voc2012(data_dir: Path) -> DetectionDataset:
    return load_voc("2012", data_dir)
