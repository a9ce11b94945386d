"""Users' own detection data in the COCO format: ``coco_json:IMAGES_DIR:ANNOTATIONS.json``.

The annotations file lists ``images`` (id, file_name), ``annotations`` (image_id, category_id, bbox as
[x, y, width, height] in pixels, optional iscrowd) and ``categories`` (id, name). Classes are the categories
sorted by id, numbered 1..C. The images are split once, by a fixed permutation (not the cell's seed), into
the pool and a test split of TEST_FRACTION of them; every image is resized to SIZE x SIZE (its boxes with it).
Crowd boxes are kept as ``difficult``: evaluation neither rewards nor punishes detections on them.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.errors import ConfigError

if TYPE_CHECKING:
    from benchmark.detection.dataset import DetectionDataset

SIZE = 300  # SSD300's input
TEST_FRACTION = 0.2
SPLIT_SEED = 0
_LAYOUT = ("a COCO-format JSON file with 'images' (id, file_name), 'annotations' (image_id, category_id, "
           "bbox [x, y, w, h]) and 'categories' (id, name)")


@functools.lru_cache(maxsize=8)
def _read(spec: str, annotations: Path, stamp: int) -> dict[str, Any]:
    del stamp  # cache key only
    problem = f"dataset '{spec}': {annotations} must be {_LAYOUT}"
    if not annotations.is_file():
        raise ConfigError(f"dataset '{spec}': {annotations} does not exist; it must be {_LAYOUT}")
    try:
        data = json.loads(annotations.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{problem}; it could not be read ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations",
                                                                                      "categories")):
        raise ConfigError(f"{problem}; one of its lists is missing")
    try:
        categories = sorted(int(c["id"]) for c in data["categories"])
        images = [(int(i["id"]), str(i["file_name"])) for i in data["images"]]
        boxes = [(int(a["image_id"]), int(a["category_id"]), [float(v) for v in a["bbox"]], bool(a.get("iscrowd")))
                 for a in data["annotations"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{problem}; an entry lacks a field or has a wrong type "
                          f"({type(exc).__name__}: {exc})") from None
    if len(categories) < 1 or len(images) < 2:
        raise ConfigError(f"{problem}; it needs at least one category and two images")
    known = set(categories)
    image_ids = {i for i, _ in images}
    for image_id, category, bbox, _ in boxes:
        if category not in known or image_id not in image_ids or len(bbox) != 4 or bbox[2] <= 0 or bbox[3] <= 0:
            raise ConfigError(f"{problem}; annotation of image {image_id} (category {category}, bbox {bbox}) names "
                              "an unknown image or category or has no area")
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in data["categories"]}
    return {"images": images, "boxes": boxes, "categories": categories, "names": names}


def split_images(n_images: int) -> tuple[np.ndarray, np.ndarray]:
    """(pool positions, test positions) of the images, fixed for a given count."""
    order = np.random.default_rng(SPLIT_SEED).permutation(n_images)
    n_test = max(1, round(TEST_FRACTION * n_images))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def coco_json_info(spec: str, images_dir: Path, annotations: Path) -> dict[str, Any]:
    """Static facts of a coco_json dataset (reads only the JSON file)."""
    if not images_dir.is_dir():
        raise ConfigError(f"dataset '{spec}': the images folder {images_dir} does not exist")
    stamp = annotations.stat().st_mtime_ns if annotations.is_file() else 0
    data = _read(spec, annotations, stamp)
    pool, test = split_images(len(data["images"]))
    return {"n_train": len(pool), "n_test": len(test), "num_classes": len(data["categories"]), "channels": 3,
            "image_size": SIZE, "crop_padding": 0, "hflip": True, "balanced": False, "class_counts": None,
            "task": "detection"}


def load_coco_json(spec: str, images_dir: Path, annotations: Path) -> DetectionDataset:
    import torch
    from PIL import Image

    from benchmark.detection.dataset import DetectionDataset

    data = _read(spec, annotations.resolve(), annotations.resolve().stat().st_mtime_ns)
    number = {c: k + 1 for k, c in enumerate(data["categories"])}
    per_image: dict[int, list[tuple[int, list[float], bool]]] = {}
    for image_id, category, bbox, crowd in data["boxes"]:
        per_image.setdefault(image_id, []).append((number[category], bbox, crowd))
    xs, boxes, labels, difficult = [], [], [], []
    for image_id, file_name in data["images"]:
        path = images_dir / file_name
        try:
            with Image.open(path) as img:
                rgb = img.convert("RGB")
        except OSError as exc:
            raise ConfigError(f"dataset '{spec}': image {path} cannot be read ({exc})") from None
        sx, sy = SIZE / rgb.width, SIZE / rgb.height
        xs.append(np.asarray(rgb.resize((SIZE, SIZE), Image.BILINEAR), np.uint8).transpose(2, 0, 1))
        objects = per_image.get(image_id, [])
        boxes.append(torch.tensor([[x * sx, y * sy, (x + w) * sx, (y + h) * sy] for _, (x, y, w, h), _ in objects],
                                  dtype=torch.float32).reshape(-1, 4))
        labels.append(torch.tensor([c for c, _, _ in objects], dtype=torch.int64))
        difficult.append(torch.tensor([d for _, _, d in objects], dtype=torch.bool))
    pool, test = split_images(len(xs))
    images = torch.from_numpy(np.stack(xs))
    names = tuple(data["names"][c] for c in data["categories"])

    def pick(items: list[torch.Tensor], at: np.ndarray) -> list[torch.Tensor]:
        return [items[i] for i in at]

    return DetectionDataset(spec, images[torch.from_numpy(pool)], pick(boxes, pool), pick(labels, pool),
                            pick(difficult, pool), images[torch.from_numpy(test)], pick(boxes, test),
                            pick(labels, test), pick(difficult, test), names)
