"""Pascal VOC detection through torchvision's VOCDetection, downloaded into the data directory on first use.

voc2007: trainval as the pool, test as the test split. voc2012: train as the pool and val as the test split,
since the 2012 test annotations are not public. Every image is resized to SIZE x SIZE (SSD300's input; the
detectors resize to their own input anyway) with its boxes, once, and cached beside the download as
``alb_voc<year>_<SIZE>.npz``. Objects marked ``difficult`` are kept with that flag: the evaluation ignores
them, as VOC's own does.
"""

from __future__ import annotations

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
MANUAL = {
    "2007": ("http://host.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtrainval_06-Nov-2007.tar and "
             "VOCtest_06-Nov-2007.tar", "VOCdevkit/VOC2007/ (extracted)"),
    "2012": ("http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
             "VOCdevkit/VOC2012/ (extracted)"),
}


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
    import torchvision.datasets as tvd

    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        return tvd.VOCDetection(str(data_dir), year=year, image_set=image_set, download=True)
    except Exception as exc:  # torchvision raises URLError, RuntimeError, OSError...
        url, where = MANUAL[year]
        raise DatasetUnavailableError(
            f"dataset 'voc{year}' is not in {data_dir} and could not be downloaded ({exc.__class__.__name__}: "
            f"{exc}). Download {url} and place it as {data_dir / where}, or point --data-dir / ALB_DATA at a "
            "folder that already holds it.") from None


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
    tmp = cache.with_suffix(".tmp.npz")
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
