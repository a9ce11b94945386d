"""Decoding images into uint8 arrays, and the cache of a decoded image_folder, without torch.

A leaf of ``benchmark.data`` (numpy and PIL only): dataset validation (benchmark.data.dataset_info) decodes an
image_folder through it once, and the loaders (benchmark/data/image_sets.py, which re-exports these names)
read what it cached, without the package and its loaders importing each other.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.dataset_versions import PARAMETRIC_DATASET_VERSIONS
from benchmark.errors import ConfigError, DatasetUnavailableError

_DECODE_THREADS = max(1, min(8, os.cpu_count() or 1))
# a small file may declare a huge image (a 20 kB PNG of 13000 x 13000 pixels decodes to 1.7 GB): an image of
# more pixels than this is refused from its header, before decoding; PIL's own decompression-bomb check
# refuses those of more than 2 x Image.MAX_IMAGE_PIXELS (179 million) whatever this says
MAX_IMAGE_PIXELS_ENV = "ALB_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 25_000_000  # a 5000 x 5000 photo


def max_image_pixels() -> int:
    """The bound on the pixels of one image: $ALB_MAX_IMAGE_PIXELS, else DEFAULT_MAX_IMAGE_PIXELS."""
    text = os.environ.get(MAX_IMAGE_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{MAX_IMAGE_PIXELS_ENV} must be a positive whole number of pixels, got {text[:40]!r}; "
                          f"unset it for the default {DEFAULT_MAX_IMAGE_PIXELS}")
    return value


def _check_pixels(source: Any, image: Any) -> None:
    width, height = image.size
    bound = max_image_pixels()
    if width * height > bound:
        raise DatasetUnavailableError(
            f"image {source} declares {width} x {height} = {width * height} pixels, more than the {bound} an image "
            f"may have; shrink it, or raise the bound with {MAX_IMAGE_PIXELS_ENV}=N if the memory allows")


# ---------------------------------------------------------------- shared helpers


def decode_image(source: Any, size: int | None) -> np.ndarray:
    """One image (a path or an open PIL image) as RGB uint8 HWC, resized to size x size when given; an image
    of more than max_image_pixels() pixels is refused before it is decoded."""
    from PIL import Image

    image = Image.open(source) if isinstance(source, str | Path) else source
    with image:
        _check_pixels(source, image)
        rgb = image.convert("RGB")
        if size is not None and rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)


def decode_many(sources: Sequence[Any], size: int | None, load: Callable[[Any], Any] | None = None) -> np.ndarray:
    """Decode images in threads (PIL releases the GIL) into one uint8 NCHW array."""
    def one(source: Any) -> np.ndarray:
        try:
            return decode_image(load(source) if load is not None else source, size)
        except (DatasetUnavailableError, ConfigError):  # already says which image and what to do
            raise
        except Exception as exc:  # PIL raises OSError, SyntaxError, DecompressionBombError, ... for a bad file
            raise DatasetUnavailableError(f"image {source} could not be decoded ({exc.__class__.__name__}: "
                                          f"{exc}); replace or remove it") from exc

    if not len(sources):
        side = size or 1
        return np.zeros((0, 3, side, side), dtype=np.uint8)
    first = one(sources[0])
    out = np.empty((len(sources), 3, *first.shape[:2]), dtype=np.uint8)  # filled in place: no stacked copy

    def fill(index: int) -> None:
        image = first if index == 0 else one(sources[index])
        if image.shape != first.shape:
            raise DatasetUnavailableError(f"image {sources[index]} is {image.shape[1]}x{image.shape[0]}, the first "
                                          f"one {first.shape[1]}x{first.shape[0]}: give a size to resize them to")
        out[index] = image.transpose(2, 0, 1)

    with ThreadPoolExecutor(_DECODE_THREADS) as pool:
        list(pool.map(fill, range(len(sources))))
    return out


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """Write an uncompressed .npz atomically (concurrent workers may build the same cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with open(partial, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(partial, path)


def read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None if it is missing or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as arrays:
            return {key: arrays[key] for key in ("x_train", "y_train", "x_test", "y_test", "classes")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


FOLDER_CACHE = ".alb_cache"  # in an image_folder's root (hidden: not a class, not listed)
FolderListing = tuple[list[str], list[list[Path]], list[list[Path]]]  # see benchmark.data.image_folder_listing


def image_folder_cache(path: Path, size: int, listing: FolderListing) -> Path:
    """PATH/.alb_cache/image_folder_<size>px_<digest>.npz; the digest covers every image's class, split, name,
    size and modification time, so a changed, added or removed image makes a new cache (so does a new version
    of the image_folder loader)."""
    classes, train, test = listing
    digest = hashlib.sha256(f"v{PARAMETRIC_DATASET_VERSIONS['image_folder']} {size}\n".encode())
    for split, per_class in (("train", train), ("test", test)):
        for name, files in zip(classes, per_class, strict=True):
            for file in files:
                stat = file.stat()
                digest.update(f"{split}/{name}/{file.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return path / FOLDER_CACHE / f"image_folder_{size}px_{digest.hexdigest()[:20]}.npz"


def decode_image_folder(spec: str, path: Path, size: int, keep: bool,
                        listing: FolderListing) -> dict[str, np.ndarray] | None:
    """The decoded arrays of an image_folder (x uint8 NCHW, y int64, classes), from its cache when that holds
    the current listing, else decoded (ConfigError naming a file PIL cannot decode) and cached. keep=False:
    only make sure the folder decodes and is cached; returns None."""
    try:
        cache = image_folder_cache(path, size, listing)
    except OSError as exc:  # an image vanished while listing
        raise ConfigError(f"dataset '{spec}': {exc}") from None
    if cache.is_file():
        if not keep:
            return None
        cached = read_cache(cache)
        if cached is not None:
            return cached
    classes, train, test = listing

    def flat(per_class: list[list[Path]]) -> tuple[list[Path], np.ndarray]:
        files = [f for group in per_class for f in group]
        labels = np.asarray([c for c, group in enumerate(per_class) for _ in group], dtype=np.int64)
        return files, labels

    (train_files, y_train), (test_files, y_test) = flat(train), flat(test)
    try:
        arrays = {"x_train": decode_many(train_files, size), "y_train": y_train,
                  "x_test": decode_many(test_files, size), "y_test": y_test, "classes": np.asarray(classes)}
    except DatasetUnavailableError as exc:
        raise ConfigError(f"dataset '{spec}': {exc}") from None
    _write_folder_cache(cache, arrays)
    return arrays


def _write_folder_cache(cache: Path, arrays: dict[str, np.ndarray]) -> None:
    """Save the arrays and delete older caches of the same size; a read-only folder is left as it is."""
    try:
        save_arrays(cache, **arrays)
        for stale in cache.parent.glob(f"{cache.name.rsplit('_', 1)[0]}_*.npz"):
            if stale != cache:
                stale.unlink(missing_ok=True)
    except OSError as exc:
        warnings.warn(f"could not cache the decoded images in {cache.parent} ({exc}); every process that loads "
                      "this image_folder decodes it again", stacklevel=3)
