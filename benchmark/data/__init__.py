"""Dataset registry and the static facts of every dataset a suite can name.

Each registered entry carries static facts (pool and test sizes, classes, image
shape and the dataset's standard augmentation) so that suite files can be
validated without loading any data or importing torch.

Besides registered names, a suite's ``dataset`` key accepts two parametric specs
that point at the user's own files (read here with numpy and zipfile only, so
that validation stays torch-free):

* ``npz:PATH`` - one ``.npz`` file with the arrays ``x_train, y_train, x_test,
  y_test``; images uint8 NHWC, NCHW or NHW (grey), square; labels 0..C-1, every
  class in 0..C-1 present in y_train or y_test, 2 <= C <= MAX_CLASSES; both
  splits non-empty (a test class that y_train lacks is warned about).
* ``hf:NAME[:CONFIG][?OPTIONS]`` - a Hugging Face image-classification dataset (Hub id or a local
  ``save_to_disk`` / parquet copy), converted once into a cache; see :mod:`benchmark.data.hf`.
* ``image_folder:PATH`` or ``image_folder:PATH:SIZE`` - ``PATH/train/<class>/*``
  and ``PATH/test/<class>/*``; classes (at least two) are the sorted folder
  names of ``train/``; every image is converted to RGB and resized to SIZE x
  SIZE (default 32). Validation decodes every image once (naming any file PIL
  cannot decode) into ``PATH/.alb_cache/``, which the loader then reads.

Relative paths are resolved against the current working directory. Static facts
of a path are cached per process until the file's (npz) or the root folder's
(image_folder) modification time changes. Both kinds
use random crops with ``max(1, size // 8)`` pixels of padding and horizontal
flips (the common setting for natural images).
"""

from __future__ import annotations

import functools
import math
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import ConfigError
from benchmark.registry import DatasetInfo, Registry

DATASETS: Registry[Any, DatasetInfo] = Registry("dataset", DatasetInfo)

_TV = "benchmark.data.torchvision_sets"
_IMG = "benchmark.data.image_sets"

# facts: see DatasetInfo (datasets that are not balanced have their class sizes in CLASS_COUNTS)
DATASETS.register(
    "digits", "benchmark.data.digits:load_digits_dataset",
    "scikit-learn's embedded 8x8 handwritten digits (1,797 images, 10 classes); offline",
    DatasetInfo(n_train=1347, n_test=450, num_classes=10, channels=1, image_size=8,
                crop_padding=1, hflip=False, balanced=False),
)
DATASETS.register(
    "mnist", f"{_TV}:load_mnist", "MNIST 28x28 handwritten digits (torchvision download)",
    DatasetInfo(n_train=60000, n_test=10000, num_classes=10, channels=1, image_size=28,
                crop_padding=2, hflip=False, balanced=False),
)
DATASETS.register(
    "fashion_mnist", f"{_TV}:load_fashion_mnist",
    "Fashion-MNIST 28x28 clothing images (torchvision download)",
    DatasetInfo(n_train=60000, n_test=10000, num_classes=10, channels=1, image_size=28,
                crop_padding=2, hflip=True, balanced=True),
)
DATASETS.register(
    "cifar10", f"{_TV}:load_cifar10", "CIFAR-10 32x32 colour images, 10 classes",
    DatasetInfo(n_train=50000, n_test=10000, num_classes=10, channels=3, image_size=32,
                crop_padding=4, hflip=True, balanced=True),
)
DATASETS.register(
    "cifar100", f"{_TV}:load_cifar100", "CIFAR-100 32x32 colour images, 100 classes",
    DatasetInfo(n_train=50000, n_test=10000, num_classes=100, channels=3, image_size=32,
                crop_padding=4, hflip=True, balanced=True),
)
DATASETS.register(
    "svhn", f"{_TV}:load_svhn", "SVHN 32x32 house numbers (train split, no 'extra')",
    DatasetInfo(n_train=73257, n_test=26032, num_classes=10, channels=3, image_size=32,
                crop_padding=4, hflip=False, balanced=False),
)
# seed 000 (resnet18_tin_new.py) trains with RandomResizedCrop(64) + flip + colour jitter; alb keeps its one
# standard augmentation (pad-and-crop, here 8 px = 1/8 of the side as for CIFAR, plus flips).
DATASETS.register(
    "tiny_imagenet", f"{_IMG}:load_tiny_imagenet",
    "Tiny ImageNet 64x64, 200 classes; train (500 per class) as the pool, the labelled val split as test",
    DatasetInfo(n_train=100000, n_test=10000, num_classes=200, channels=3, image_size=64,
                crop_padding=8, hflip=True, balanced=True),
)
DATASETS.register(
    "caltech101", f"{_IMG}:load_caltech101",
    "Caltech-101 (101 categories, no background), resized to 64x64 RGB; fixed stratified "
    "5,800 / 2,877 split as in seed 002",
    DatasetInfo(n_train=5800, n_test=2877, num_classes=101, channels=3, image_size=64,
                crop_padding=8, hflip=True, balanced=False),
)
DATASETS.register(
    "stl10", f"{_IMG}:load_stl10", "STL-10 96x96, 10 classes; the labelled train split (5,000) as the pool",
    DatasetInfo(n_train=5000, n_test=8000, num_classes=10, channels=3, image_size=96,
                crop_padding=12, hflip=True, balanced=True),
)

# Detection (task: detection; num_classes counts object classes, without the background; image_size is the square
# size images are stored at, boxes scaled with them; crop_padding is unused: detection augments with the SSD recipe)
_DET = "benchmark.detection"
DATASETS.register(
    "digits_detection", f"{_DET}.digits_boxes:load_digits_detection",
    "embedded detection set: 1-4 real scikit-learn digits (x2 or x3) per 64x64 canvas, some overlapping, "
    "with their ink boxes and classes (600 pool / 200 test canvases); offline",
    DatasetInfo(n_train=600, n_test=200, num_classes=10, channels=1, image_size=64, crop_padding=0,
                hflip=False, balanced=False, task="detection"),
)
DATASETS.register(
    "voc2007", f"{_DET}.voc:load_voc2007",
    "Pascal VOC 2007 detection, 20 classes: trainval (5,011) as the pool, test (4,952) as test; images "
    "resized to 300x300 (torchvision VOCDetection download)",
    DatasetInfo(n_train=5011, n_test=4952, num_classes=20, channels=3, image_size=300, crop_padding=0,
                hflip=True, balanced=False, task="detection"),
)
DATASETS.register(
    "voc2012", f"{_DET}.voc:load_voc2012",
    "Pascal VOC 2012 detection, 20 classes: train (5,717) as the pool, val (5,823) as test (the test "
    "annotations are not public); images resized to 300x300 (torchvision VOCDetection download)",
    DatasetInfo(n_train=5717, n_test=5823, num_classes=20, channels=3, image_size=300, crop_padding=0,
                hflip=True, balanced=False, task="detection"),
)

# Train images per class of the registered datasets that are not balanced.
CLASS_COUNTS: dict[str, list[int]] = {
    # benchmark.data.digits' fixed stratified split
    "digits": [133, 136, 133, 137, 136, 136, 136, 134, 131, 135],
    # the published MNIST training set
    "mnist": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    # SVHN train_32x32.mat; torchvision maps the digit '0' (label 10) to class 0
    "svhn": [4948, 13861, 10585, 8497, 7458, 6882, 5727, 5595, 5045, 4659],
    # image_sets.caltech101_train_counts() of the published category sizes (sorted category names)
    "caltech101": [
        291, 291, 134, 533, 37, 535, 28, 28, 31, 36, 31, 22, 86, 66, 29, 57, 61, 33, 29, 82, 31, 39, 41, 72, 31, 46,
        49, 47, 33, 34, 38, 45, 35, 43, 45, 50, 43, 35, 43, 57, 45, 45, 30, 23, 23, 34, 66, 67, 28, 36, 59, 54, 21,
        43, 58, 76, 41, 54, 52, 27, 44, 29, 27, 58, 21, 51, 37, 23, 26, 31, 25, 30, 35, 23, 38, 55, 39, 33, 27, 42,
        26, 56, 38, 23, 43, 30, 58, 39, 43, 23, 57, 33, 58, 50, 160, 25, 39, 23, 37, 26, 40
    ],
}

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
# labels are class numbers 0..C-1; a larger C is a damaged file (every cell would allocate C-sized outputs)
MAX_CLASSES = 100_000
IMAGE_FOLDER_DEFAULT_SIZE = 32
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
PARAMETRIC_KINDS = ("npz", "image_folder", "hf", "coco_json")
_SPEC_FORMS = ("'npz:PATH' or 'image_folder:PATH' / 'image_folder:PATH:SIZE' or 'hf:NAME[:CONFIG]' (a Hugging Face "
               "dataset, see benchmark.data.hf) (classification), 'coco_json:IMAGES_DIR:ANNOTATIONS.json' (detection)")
_NPZ_LAYOUT = ("an .npz file with arrays x_train, y_train, x_test, y_test (x: uint8 NHWC, NCHW or NHW, "
               "square images; y: integer labels 0..C-1)")
_FOLDER_LAYOUT = "PATH/train/<class>/<image files> and PATH/test/<class>/<image files>"


@dataclass(frozen=True)
class ParametricSpec:
    """A dataset given by path: ``kind`` is 'npz' or 'image_folder'; ``size`` only for image_folder."""

    spec: str
    kind: str
    path: Path
    size: int | None = None
    annotations: Path | None = None  # coco_json: the COCO-format annotations file (path: the images folder)


def parse_spec(spec: str) -> ParametricSpec | None:
    """The parametric form of a dataset spec, or None for a plain (registry) name.

    Raises ConfigError for a parametric prefix without a path or with a bad SIZE.
    """
    kind, sep, rest = spec.partition(":")
    if kind not in PARAMETRIC_KINDS:
        return None
    if not sep or not rest.strip():
        raise ConfigError(f"dataset '{spec}' needs a path: write {_SPEC_FORMS}")
    if kind == "npz":
        return ParametricSpec(spec, kind, Path(rest).expanduser())
    if kind == "hf":  # the name may be a Hub id: benchmark.data.hf parses the rest
        return ParametricSpec(spec, kind, Path(rest))
    if kind == "coco_json":
        images, _, annotations = rest.rpartition(":")
        if not images.strip() or not annotations.strip():
            raise ConfigError(f"dataset '{spec}' needs an images folder and an annotations file: write "
                              "'coco_json:IMAGES_DIR:ANNOTATIONS.json'")
        return ParametricSpec(spec, kind, Path(images).expanduser(), annotations=Path(annotations).expanduser())
    path, _, last = rest.rpartition(":")
    size = IMAGE_FOLDER_DEFAULT_SIZE
    if path and last.strip().lstrip("+-").isdigit():
        size = int(last)
        if size < 1:
            raise ConfigError(f"dataset '{spec}': SIZE must be a positive number of pixels, got {size}")
    else:
        path = rest
    if not path.strip():
        raise ConfigError(f"dataset '{spec}' needs a path: write {_SPEC_FORMS}")
    return ParametricSpec(spec, kind, Path(path).expanduser(), size)


def unknown_dataset_message(spec: str) -> str:
    """The registry's unknown-name message plus the parametric forms."""
    return f"{DATASETS.unknown_message(spec)} A dataset given by path is written {_SPEC_FORMS}."


def dataset_task(spec: str) -> str:
    """'classification' or 'detection': what the cells of this dataset train and measure (static facts only)."""
    return str(dataset_info(spec).get("task", "classification"))


def is_known_dataset(spec: str) -> bool:
    """Cheap syntax check: a registered name, or a well-formed parametric spec (its files are not read)."""
    if spec in DATASETS:
        return True
    try:
        return parse_spec(spec) is not None
    except ConfigError:
        return False


def dataset_info(spec: str) -> dict[str, Any]:
    """Static facts of a dataset spec, without loading images or importing torch.

    Keys: n_train, n_test, num_classes, channels, image_size, crop_padding, hflip,
    balanced, class_counts (train images per class, or None where unknown).
    Raises ConfigError for unknown names, missing paths and malformed files.
    """
    parametric = parse_spec(spec)
    if parametric is None:
        if spec not in DATASETS:
            raise ConfigError(unknown_dataset_message(spec))
        info = DATASETS.info(spec).facts()
        if spec in CLASS_COUNTS:
            info["class_counts"] = list(CLASS_COUNTS[spec])
        elif info.get("balanced") and info["n_train"] % info["num_classes"] == 0:
            info["class_counts"] = [info["n_train"] // info["num_classes"]] * info["num_classes"]
        else:
            info["class_counts"] = None
        return info
    if parametric.kind == "hf":
        from benchmark.data import hf

        return hf.info(spec)
    if parametric.kind == "coco_json":
        from benchmark.detection.coco_json import coco_json_info  # torch-free: json only

        assert parametric.annotations is not None
        return coco_json_info(spec, parametric.path.resolve(), parametric.annotations.resolve())
    path = parametric.path.resolve()
    layout = _NPZ_LAYOUT if parametric.kind == "npz" else _FOLDER_LAYOUT
    if not path.exists():
        raise ConfigError(f"dataset '{spec}': {path} does not exist; it must be {layout}")
    stamp = path.stat().st_mtime_ns
    if parametric.kind == "npz":
        info = _npz_info(spec, path, stamp)
    else:
        assert parametric.size is not None
        info = _image_folder_info(spec, path, parametric.size, stamp)
    info = dict(info)
    info["class_counts"] = list(info["class_counts"])
    return info


def _parametric_info(n_train: int, n_test: int, class_counts: list[int], channels: int, size: int) -> dict[str, Any]:
    return {
        "n_train": n_train, "n_test": n_test, "num_classes": len(class_counts), "channels": channels,
        "image_size": size, "crop_padding": max(1, size // 8), "hflip": True,
        "balanced": len(set(class_counts)) == 1, "class_counts": tuple(class_counts), "task": "classification",
    }


# ---------------------------------------------------------------- npz


def npz_layout(shape: tuple[int, ...]) -> str | None:
    """'NHW', 'NCHW' or 'NHWC' for a square image array shape, None if it is none of them."""
    if len(shape) == 3 and shape[1] == shape[2]:
        return "NHW"
    if len(shape) == 4:
        if shape[1] in (1, 3) and shape[2] == shape[3]:
            return "NCHW"
        if shape[3] in (1, 3) and shape[1] == shape[2]:
            return "NHWC"
    return None


def _npy_header(archive: zipfile.ZipFile, key: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype of one member; ValueError when the member is shorter than its header promises."""
    with archive.open(f"{key}.npy") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        shape, dtype = tuple(int(s) for s in shape), np.dtype(dtype)
        data_bytes = archive.getinfo(f"{key}.npy").file_size - handle.tell()
    if not dtype.hasobject and data_bytes < math.prod(shape) * dtype.itemsize:
        raise ValueError(f"{key} is truncated: its header says {shape} {dtype}, but the file holds only "
                         f"{data_bytes} bytes of data")
    return shape, dtype


@functools.lru_cache(maxsize=16)
def _npz_info(spec: str, path: Path, stamp: int) -> dict[str, Any]:
    del stamp  # part of the cache key only: a rewritten file is read again
    problem = f"dataset '{spec}': {path} must be {_NPZ_LAYOUT}"
    try:
        with zipfile.ZipFile(path) as archive:
            names = {name.removesuffix(".npy") for name in archive.namelist()}
            missing = [key for key in NPZ_KEYS if key not in names]
            if missing:
                raise ConfigError(f"{problem}; missing: {', '.join(missing)} (found: {', '.join(sorted(names))})")
            headers = {key: _npy_header(archive, key) for key in NPZ_KEYS}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ConfigError(f"{problem}; it could not be read as one ({exc})") from None
    (train_shape, train_dtype), (test_shape, test_dtype) = headers["x_train"], headers["x_test"]
    for split, shape, dtype in (("x_train", train_shape, train_dtype), ("x_test", test_shape, test_dtype)):
        if dtype != np.uint8:
            raise ConfigError(f"{problem}; {split} is {dtype}: store images as uint8 0..255, e.g. "
                              "np.clip(x * 255, 0, 255).round().astype(np.uint8)")
        if npz_layout(shape) is None or min(shape[1:]) < 1:
            raise ConfigError(f"{problem}; {split} has shape {shape}: use (N, H, W), (N, C, H, W) or (N, H, W, C) "
                              "with C in (1, 3) and H == W >= 1")
    layout, test_layout = npz_layout(train_shape), npz_layout(test_shape)
    image = _image_shape(train_shape, layout)
    if _image_shape(test_shape, test_layout) != image:
        raise ConfigError(f"{problem}; x_train images are {image} (C, H, W) but x_test images are "
                          f"{_image_shape(test_shape, test_layout)}")
    if not train_shape[0]:
        raise ConfigError(f"{problem}; x_train is empty")
    if not test_shape[0]:
        raise ConfigError(f"{problem}; x_test is empty: accuracy needs a test split")
    y_train = _npz_labels(path, problem, "y_train", headers["y_train"], train_shape[0])
    y_test = _npz_labels(path, problem, "y_test", headers["y_test"], test_shape[0])
    counts = _class_counts(path, problem, y_train, y_test)
    return _parametric_info(len(y_train), len(y_test), counts, image[0], image[1])


def _npz_labels(path: Path, problem: str, key: str, header: tuple[tuple[int, ...], np.dtype[Any]],
                n: int) -> np.ndarray:
    """The labels under ``key``: n integers >= 0 and < MAX_CLASSES (the header is checked before any is read)."""
    shape, dtype = header
    if shape != (n,) or dtype.kind not in "iu":
        raise ConfigError(f"{problem}; {key} must hold {n} integer labels (one per image of "
                          f"x_{key.removeprefix('y_')}), got {dtype} {shape}")
    try:
        with np.load(path) as arrays:  # labels are small: read them for the class counts
            labels = np.asarray(arrays[key])
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{problem}; {key} could not be read ({exc})") from None
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise ConfigError(f"{problem}; {key} holds the negative label {low} (at index "
                          f"{int(np.argmin(labels))}): labels are class numbers 0..C-1")
    if high >= MAX_CLASSES:
        raise ConfigError(f"{problem}; {key} holds the label {high} (at index {int(np.argmax(labels))}): "
                          f"labels are class numbers 0..C-1 and alb accepts at most {MAX_CLASSES} classes")
    return labels.astype(np.int64)


def _class_counts(path: Path, problem: str, y_train: np.ndarray, y_test: np.ndarray) -> list[int]:
    """Train images per class; the classes 0..C-1 must all occur (C = the largest label + 1), at least two."""
    present = np.union1d(np.unique(y_train), np.unique(y_test))
    num_classes = int(present[-1]) + 1
    if len(present) != num_classes:
        absent = np.setdiff1d(np.arange(num_classes), present)
        shown = ", ".join(str(c) for c in absent[:10]) + (", ..." if len(absent) > 10 else "")
        raise ConfigError(f"{problem}; the labels must be 0..C-1 without gaps, but the largest is {num_classes - 1} "
                          f"and {len(absent)} below it occur in neither y_train nor y_test: {shown}")
    if num_classes < 2:
        raise ConfigError(f"{problem}; y_train and y_test hold a single class: classification needs at least two")
    counts = np.bincount(y_train, minlength=num_classes)
    untrained = np.flatnonzero(counts == 0)
    if len(untrained):
        warnings.warn(f"dataset {path}: y_test has classes that y_train lacks ({', '.join(map(str, untrained[:10]))}"
                      f"{', ...' if len(untrained) > 10 else ''}): no strategy can label an image of them",
                      stacklevel=2)
    return counts.tolist()


def _image_shape(shape: tuple[int, ...], layout: str | None) -> tuple[int, int]:
    """(channels, size) of one image."""
    if layout == "NHW":
        return 1, shape[1]
    if layout == "NCHW":
        return shape[1], shape[2]
    return shape[3], shape[1]


# ---------------------------------------------------------------- image_folder


def image_folder_listing(spec: str, path: Path) -> tuple[list[str], list[list[Path]], list[list[Path]]]:
    """Class names and, per class, the sorted train and test image files of an image_folder tree."""
    problem = f"dataset '{spec}': {path} must hold {_FOLDER_LAYOUT}"
    train_dir, test_dir = path / "train", path / "test"
    for split_dir in (train_dir, test_dir):
        if not split_dir.is_dir():
            raise ConfigError(f"{problem}; {split_dir} is not a folder")
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    extra = sorted(p.name for p in test_dir.iterdir()
                   if p.is_dir() and not p.name.startswith(".") and p.name not in classes)
    if extra:
        raise ConfigError(f"{problem}; test classes without a train folder: {', '.join(extra)}")
    if len(classes) < 2:
        raise ConfigError(f"{problem}; {train_dir} has {len(classes) or 'no'} class folder"
                          f"{'' if len(classes) == 1 else 's'}: classification needs at least two")
    train = [_images_in(train_dir / c) for c in classes]
    test = [_images_in(test_dir / c) for c in classes]
    empty = [c for c, files in zip(classes, train, strict=True) if not files]
    if empty:
        raise ConfigError(f"{problem}; train class folders without images ({', '.join(sorted(IMAGE_EXTENSIONS))}): "
                          f"{', '.join(empty)}")
    if not any(test):
        raise ConfigError(f"{problem}; {test_dir} holds no images")
    return classes, train, test


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file())


@functools.lru_cache(maxsize=16)
def _image_folder_info(spec: str, path: Path, size: int, stamp: int) -> dict[str, Any]:
    del stamp
    from benchmark.data.decoding import decode_image_folder  # torch-free: numpy and PIL

    # every image is decoded once here, so that a damaged file fails validation, not every cell; the arrays
    # are cached in PATH/.alb_cache/ for the loader
    listing = image_folder_listing(spec, path)
    decode_image_folder(spec, path, size, keep=False, listing=listing)
    _, train, test = listing
    counts = [len(files) for files in train]
    return _parametric_info(sum(counts), sum(len(files) for files in test), counts, 3, size)
