"""Datasets decoded from image files or arrays: Tiny ImageNet, Caltech-101, STL-10, npz and image_folder.

PIL (through torchvision where it provides the dataset) is used only while
decoding; every loader returns uint8 NCHW tensors. Decoding Tiny ImageNet and
Caltech-101 takes a while, so their decoded arrays are cached as an uncompressed
``.npz`` in the data directory and later loads read only that file. An
image_folder is decoded when its suite is validated (a damaged image is named
there, not in every cell) into ``PATH/.alb_cache/``, keyed by the folder's
listing (names, sizes, modification times); the loader reads that file.

Importing this module does not import torch; the decoding itself and the image_folder cache are in
benchmark/data/decoding.py (validation decodes image folders through it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmark.data import dataset_info, decoding, image_folder_listing, npz_layout, parse_spec
from benchmark.data.decoding import DEFAULT_MAX_IMAGE_PIXELS as DEFAULT_MAX_IMAGE_PIXELS

# re-exported: the shared decoding helpers live in the leaf module benchmark/data/decoding.py
from benchmark.data.decoding import FOLDER_CACHE as FOLDER_CACHE
from benchmark.data.decoding import MAX_IMAGE_PIXELS_ENV as MAX_IMAGE_PIXELS_ENV
from benchmark.data.decoding import FolderListing as FolderListing
from benchmark.data.decoding import decode_image as decode_image
from benchmark.data.decoding import decode_many as decode_many
from benchmark.data.decoding import image_folder_cache as image_folder_cache
from benchmark.data.decoding import max_image_pixels as max_image_pixels
from benchmark.data.decoding import read_cache as read_cache
from benchmark.data.decoding import save_arrays as save_arrays
from benchmark.errors import ConfigError, DatasetUnavailableError

if TYPE_CHECKING:
    from benchmark.data.base import ImageDataset

TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_IMAGENET_FOLDER = "tiny-imagenet-200"
TINY_IMAGENET_CACHE = "tiny-imagenet-200_uint8.npz"

# Caltech-101: seed 002 (LPLgrad, Sec. IV-A) uses 5,800 train and 2,877 test images of the 8,677.
CALTECH101_TRAIN = 5800
CALTECH101_TOTAL = 8677
CALTECH101_SIZE = 64  # every image is resized (squashed, aspect not kept) to 64x64 RGB
CALTECH101_SPLIT_SEED = 0  # the split is fixed: it never depends on a cell's seed
# Published images per category, in torchvision's label order (sorted folder names, BACKGROUND_Google removed).
CALTECH101_CATEGORY_SIZES = {
    "Faces": 435, "Faces_easy": 435, "Leopards": 200, "Motorbikes": 798, "accordion": 55, "airplanes": 800,
    "anchor": 42, "ant": 42, "barrel": 47, "bass": 54, "beaver": 46, "binocular": 33, "bonsai": 128, "brain": 98,
    "brontosaurus": 43, "buddha": 85, "butterfly": 91, "camera": 50, "cannon": 43, "car_side": 123,
    "ceiling_fan": 47, "cellphone": 59, "chair": 62, "chandelier": 107, "cougar_body": 47, "cougar_face": 69,
    "crab": 73, "crayfish": 70, "crocodile": 50, "crocodile_head": 51, "cup": 57, "dalmatian": 67,
    "dollar_bill": 52, "dolphin": 65, "dragonfly": 68, "electric_guitar": 75, "elephant": 64, "emu": 53,
    "euphonium": 64, "ewer": 85, "ferry": 67, "flamingo": 67, "flamingo_head": 45, "garfield": 34, "gerenuk": 34,
    "gramophone": 51, "grand_piano": 99, "hawksbill": 100, "headphone": 42, "hedgehog": 54, "helicopter": 88,
    "ibis": 80, "inline_skate": 31, "joshua_tree": 64, "kangaroo": 86, "ketch": 114, "lamp": 61, "laptop": 81,
    "llama": 78, "lobster": 41, "lotus": 66, "mandolin": 43, "mayfly": 40, "menorah": 87, "metronome": 32,
    "minaret": 76, "nautilus": 55, "octopus": 35, "okapi": 39, "pagoda": 47, "panda": 38, "pigeon": 45,
    "pizza": 53, "platypus": 34, "pyramid": 57, "revolver": 82, "rhino": 59, "rooster": 49, "saxophone": 40,
    "schooner": 63, "scissors": 39, "scorpion": 84, "sea_horse": 57, "snoopy": 35, "soccer_ball": 64,
    "stapler": 45, "starfish": 86, "stegosaurus": 59, "stop_sign": 64, "strawberry": 35, "sunflower": 85,
    "tick": 49, "trilobite": 86, "umbrella": 75, "watch": 239, "water_lilly": 37, "wheelchair": 59,
    "wild_cat": 34, "windsor_chair": 56, "wrench": 39, "yin_yang": 60,
}

def dataset_from_arrays(name: str, arrays: dict[str, np.ndarray], num_classes: int) -> ImageDataset:
    import torch

    from benchmark.data.base import from_arrays

    return from_arrays(name, torch.from_numpy(np.ascontiguousarray(arrays["x_train"])),
                       torch.from_numpy(arrays["y_train"].astype(np.int64)),
                       torch.from_numpy(np.ascontiguousarray(arrays["x_test"])),
                       torch.from_numpy(arrays["y_test"].astype(np.int64)), num_classes)


# ---------------------------------------------------------------- Tiny ImageNet


def load_tiny_imagenet(data_dir: Path) -> ImageDataset:
    """tiny-imagenet-200: train/<wnid>/images/*.JPEG as the pool, val/ (with val_annotations.txt) as test.

    Classes are the sorted wnids of train/; downloaded and extracted into data_dir when missing;
    the decoded arrays are cached in data_dir/tiny-imagenet-200_uint8.npz.
    """
    from benchmark.data.torchvision_sets import _fetch

    cache = data_dir / TINY_IMAGENET_CACHE
    arrays = read_cache(cache)
    if arrays is None:
        root = data_dir / TINY_IMAGENET_FOLDER
        arrays, _ = _fetch("tiny_imagenet", data_dir, lambda _dl: (read_tiny_imagenet(root), None))
        save_arrays(cache, **arrays)
    return dataset_from_arrays("tiny_imagenet", arrays, len(arrays["classes"]))


def read_tiny_imagenet(root: Path) -> dict[str, np.ndarray]:
    """Decode an extracted tiny-imagenet-200 folder into uint8 NCHW arrays (64x64 RGB)."""
    train_dir, val_dir = root / "train", root / "val"
    annotations = val_dir / "val_annotations.txt"
    if not train_dir.is_dir() or not annotations.is_file():
        raise DatasetUnavailableError(
            f"{root} is incomplete: it needs train/<wnid>/images/*.JPEG and val/val_annotations.txt. "
            f"Delete it and let alb download it again, or extract {TINY_IMAGENET_URL} there by hand.")
    wnids = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    label_of = {wnid: index for index, wnid in enumerate(wnids)}
    train_files: list[Path] = []
    train_labels: list[int] = []
    for wnid in wnids:
        files = sorted((train_dir / wnid / "images").glob("*.JPEG"))
        train_files += files
        train_labels += [label_of[wnid]] * len(files)
    test_files: list[Path] = []
    test_labels: list[int] = []
    for line in annotations.read_text().splitlines():
        if not line.strip():
            continue
        filename, wnid = line.split("\t")[:2]
        if wnid not in label_of:
            raise DatasetUnavailableError(f"{annotations}: '{filename}' has class {wnid}, which has no folder "
                                          f"in {train_dir}; the extraction is incomplete")
        test_files.append(val_dir / "images" / filename)
        test_labels.append(label_of[wnid])
    missing = [str(f) for f in test_files if not f.is_file()]
    if missing:
        raise DatasetUnavailableError(f"{len(missing)} images listed in {annotations} are missing, e.g. "
                                      f"{missing[0]}; the extraction is incomplete")
    return {"x_train": decode_many(train_files, 64), "y_train": np.asarray(train_labels, dtype=np.int64),
            "x_test": decode_many(test_files, 64), "y_test": np.asarray(test_labels, dtype=np.int64),
            "classes": np.asarray(wnids)}


# ---------------------------------------------------------------- Caltech-101


def split_train_counts(class_sizes: Sequence[int], n_train: int) -> list[int]:
    """Train images per class for a stratified split with exactly n_train train images.

    Each class gets floor(size * n_train / total); the images left over go, one each, to
    the classes with the largest remainders (ties: the lower class index).
    """
    total = sum(class_sizes)
    counts = [size * n_train // total for size in class_sizes]
    remainders = [size * n_train % total for size in class_sizes]
    order = sorted(range(len(class_sizes)), key=lambda c: (-remainders[c], c))
    for c in order[: n_train - sum(counts)]:
        counts[c] += 1
    return counts


def caltech101_train_counts(class_sizes: Sequence[int]) -> list[int]:
    """Train images per class: 5,800 of the full 8,677; the same fraction of a smaller copy."""
    total = sum(class_sizes)
    n_train = (2 * total * CALTECH101_TRAIN + CALTECH101_TOTAL) // (2 * CALTECH101_TOTAL)
    return split_train_counts(class_sizes, n_train)


def stratified_train_mask(labels: np.ndarray, train_counts: Sequence[int], seed: int) -> np.ndarray:
    """A boolean mask choosing train_counts[c] random images of every class c, from a fixed generator."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for c, count in enumerate(train_counts):
        members = np.flatnonzero(labels == c)
        mask[members[rng.permutation(len(members))[:count]]] = True
    return mask


def load_caltech101(data_dir: Path) -> ImageDataset:
    """torchvision's Caltech101 (101 categories), resized to 64x64 RGB, fixed stratified 5,800 / 2,877 split.

    The split draws from its own generator (seed 0), so every cell sees the same pool; the
    decoded split is cached in data_dir/caltech101/alb_caltech101_64px.npz.
    """
    cache = data_dir / "caltech101" / f"alb_caltech101_{CALTECH101_SIZE}px.npz"
    arrays = read_cache(cache)
    if arrays is None:
        import torchvision.datasets as tvd

        from benchmark.data.torchvision_sets import _fetch

        dataset, _ = _fetch("caltech101", data_dir, lambda dl: (tvd.Caltech101(str(data_dir), download=dl), None))
        labels = np.asarray(dataset.y, dtype=np.int64)
        sizes = np.bincount(labels, minlength=len(dataset.categories)).tolist()
        train = stratified_train_mask(labels, caltech101_train_counts(sizes), CALTECH101_SPLIT_SEED)
        images = decode_many(range(len(labels)), CALTECH101_SIZE, load=lambda i: dataset[i][0])
        arrays = {"x_train": images[train], "y_train": labels[train], "x_test": images[~train],
                  "y_test": labels[~train], "classes": np.asarray(dataset.categories)}
        save_arrays(cache, **arrays)
    return dataset_from_arrays("caltech101", arrays, len(arrays["classes"]))


# ---------------------------------------------------------------- STL-10


STL10_FOLDER = "stl10_binary"


def _stl10_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """<split>_X.bin (uint8, each channel of each 96x96 image stored column by column) and <split>_y.bin
    (one uint8 label 1..10 per image) as NCHW images and 0-based labels."""
    images = np.fromfile(folder / f"{split}_X.bin", dtype=np.uint8)
    labels = np.fromfile(folder / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1
    if images.size != len(labels) * 3 * 96 * 96:
        raise DatasetUnavailableError(f"{folder / f'{split}_X.bin'} holds {images.size:,} bytes, not the "
                                      f"{len(labels):,} 96x96 RGB images {split}_y.bin labels; delete {folder} "
                                      f"and run `alb data fetch stl10 --data-dir {folder.parent}`")
    return np.ascontiguousarray(images.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)), labels


def load_stl10(data_dir: Path) -> ImageDataset:
    """STL-10's labelled train split (5,000) as the pool, test (8,000); 96x96 RGB.

    Read from the binary files directly, as torchvision's STL10 would: that class first md5-hashes every file,
    unlabeled_X.bin (2.6 GB, unused) included, on each load of each split, and refuses a folder without it;
    benchmark.data.fetch verified the archive once already."""
    import torch

    from benchmark.data.base import from_arrays
    from benchmark.data.torchvision_sets import _fetch

    folder = data_dir / STL10_FOLDER
    (x_train, y_train), (x_test, y_test) = _fetch(
        "stl10", data_dir, lambda _dl: (_stl10_split(folder, "train"), _stl10_split(folder, "test")))
    return from_arrays("stl10", torch.from_numpy(x_train), torch.from_numpy(y_train), torch.from_numpy(x_test),
                       torch.from_numpy(y_test), 10)


# ---------------------------------------------------------------- parametric: npz and image_folder


def to_nchw(images: np.ndarray, layout: str) -> np.ndarray:
    if layout == "NHW":
        images = images[:, None]
    elif layout == "NHWC":
        images = images.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(images, dtype=np.uint8)


def load_parametric(spec: str) -> ImageDataset:
    """Load an 'npz:PATH' or 'image_folder:PATH[:SIZE]' spec (validated by dataset_info first)."""
    parametric = parse_spec(spec)
    if parametric is None:
        raise ConfigError(f"dataset '{spec}' is not a path spec ('npz:PATH' or 'image_folder:PATH[:SIZE]')")
    if parametric.kind == "hf":
        from benchmark.data import hf

        arrays = hf.arrays(spec)
        return dataset_from_arrays(spec, arrays, len(arrays["classes"]))
    info = dataset_info(spec)
    path = parametric.path.resolve()
    if parametric.kind == "npz":
        with np.load(path) as arrays:
            loaded = {key: arrays[key] for key in ("x_train", "y_train", "x_test", "y_test")}
        for key in ("x_train", "x_test"):
            layout = npz_layout(loaded[key].shape)
            assert layout is not None  # dataset_info checked it
            loaded[key] = to_nchw(loaded[key], layout)
        return dataset_from_arrays(spec, loaded, info["num_classes"])
    assert parametric.size is not None
    arrays = decode_image_folder(spec, path, parametric.size, keep=True)
    assert arrays is not None
    return dataset_from_arrays(spec, arrays, len(arrays["classes"]))


def decode_image_folder(spec: str, path: Path, size: int, keep: bool,
                        listing: FolderListing | None = None) -> dict[str, np.ndarray] | None:
    """:func:`benchmark.data.decoding.decode_image_folder`, listing the folder when no listing is given."""
    listing = image_folder_listing(spec, path) if listing is None else listing
    return decoding.decode_image_folder(spec, path, size, keep, listing)
