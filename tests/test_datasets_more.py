"""Tiny ImageNet, Caltech-101, STL-10, npz and image_folder datasets, on miniature fake files (no internet)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.data import CLASS_COUNTS, DATASETS, dataset_info, is_known_dataset, parse_spec
from benchmark.data import image_sets as sets
from benchmark.data.loading import load_dataset
from benchmark.errors import ConfigError, DatasetUnavailableError

REPO = Path(__file__).resolve().parents[1]


def write_image(path: Path, size: tuple[int, int], mode: str = "RGB", value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    array = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(array.squeeze(-1) if channels == 1 else array, mode).save(path)


def no_internet(*_: Any, **__: Any) -> None:
    raise OSError("network unreachable (test)")


# ---------------------------------------------------------------- Tiny ImageNet


def fake_tiny_imagenet(data_dir: Path) -> None:
    root = data_dir / "tiny-imagenet-200"
    wnids = ["n02", "n01", "n03"]  # not sorted on disk: classes must be the sorted wnids
    for k, wnid in enumerate(wnids):
        for i in range(4):
            write_image(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", (64, 64),
                        "L" if i == 0 else "RGB", value=10 * k + i)
    lines = []
    for i, wnid in enumerate(["n03", "n01", "n01", "n02", "n03"]):
        write_image(root / "val" / "images" / f"val_{i}.JPEG", (64, 64), value=100 + i)
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")


def test_tiny_imagenet_layout_and_cache(tmp_path: Path) -> None:
    fake_tiny_imagenet(tmp_path)
    data = sets.load_tiny_imagenet(tmp_path)
    assert data.train_x.shape == (12, 3, 64, 64) and data.train_x.dtype == torch.uint8
    assert data.train_y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert data.test_x.shape == (5, 3, 64, 64)
    assert data.test_y.tolist() == [2, 0, 0, 1, 2]  # n01 -> 0, n02 -> 1, n03 -> 2
    assert data.train_y.dtype == torch.int64 and data.num_classes == 3
    grey = data.train_x[0]  # a grayscale JPEG becomes three equal channels
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    cache = tmp_path / "tiny-imagenet-200_uint8.npz"
    assert cache.is_file()
    import shutil

    shutil.rmtree(tmp_path / "tiny-imagenet-200")  # the second load reads only the cache
    again = sets.load_tiny_imagenet(tmp_path)
    assert torch.equal(again.train_x, data.train_x) and torch.equal(again.test_y, data.test_y)


def test_tiny_imagenet_incomplete_copy_fails_the_size_check(tmp_path: Path) -> None:
    fake_tiny_imagenet(tmp_path)
    with pytest.raises(DatasetUnavailableError, match="expected 100000 train images, loaded 12"):
        load_dataset("tiny_imagenet", tmp_path)


def test_tiny_imagenet_missing_gives_manual_download(tmp_path: Path) -> None:
    # conftest's ALB_DATA_MIRROR is a closed port: the download fails at once
    with pytest.raises(DatasetUnavailableError, match=r"tiny-imagenet-200\.zip and place it as .*tiny-imagenet-200"):
        sets.load_tiny_imagenet(tmp_path)


# ---------------------------------------------------------------- Caltech-101


def test_caltech101_static_counts_follow_the_split_rule() -> None:
    sizes = [sets.CALTECH101_CATEGORY_SIZES[name] for name in sorted(sets.CALTECH101_CATEGORY_SIZES)]
    assert len(sizes) == 101 and sum(sizes) == 8677
    assert CLASS_COUNTS["caltech101"] == sets.caltech101_train_counts(sizes)
    assert sum(CLASS_COUNTS["caltech101"]) == 5800
    assert sets.split_train_counts([5, 5, 2], 6) == [3, 2, 1]  # remainders 0.5, 0.5, 0: ties to the lower class


def test_caltech101_from_torchvision_layout(tmp_path: Path) -> None:
    root = tmp_path / "caltech101" / "101_ObjectCategories"
    sizes = {"Faces": 6, "ant": 3, "bee": 9}
    for k, (category, n) in enumerate(sizes.items()):
        for i in range(1, n + 1):
            mode = "L" if i == 2 else "RGB"
            write_image(root / category / f"image_{i:04d}.jpg", (40 + 7 * i, 30 + 5 * k), mode, value=i + 10 * k)
    write_image(root / "BACKGROUND_Google" / "image_0001.jpg", (50, 50))
    data = sets.load_caltech101(tmp_path)
    assert data.num_classes == 3  # BACKGROUND_Google is not a class
    # 18 images: round(18 * 5800 / 8677) = 12 train, stratified
    assert data.train_x.shape == (12, 3, 64, 64) and data.test_x.shape == (6, 3, 64, 64)
    assert data.train_x.dtype == torch.uint8 and data.test_y.dtype == torch.int64
    assert np.bincount(data.train_y.numpy()).tolist() == sets.caltech101_train_counts([6, 3, 9]) == [4, 2, 6]
    assert (tmp_path / "caltech101" / "alb_caltech101_64px.npz").is_file()
    again = sets.load_caltech101(tmp_path)  # from the cache: the same fixed split
    assert torch.equal(again.train_x, data.train_x) and torch.equal(again.test_y, data.test_y)


def test_caltech101_missing_gives_manual_download(tmp_path: Path) -> None:
    where = r"caltech-101\.zip and place it as .*caltech101/caltech-101\.zip"
    with pytest.raises(DatasetUnavailableError, match=where):
        sets.load_caltech101(tmp_path)


# ---------------------------------------------------------------- STL-10


def test_stl10_shapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The binary files read directly (tests/test_data_archives.py fetches a whole small archive)."""
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    for split, n in (("train", 6), ("test", 4)):
        (folder / f"{split}_X.bin").write_bytes(np.random.default_rng(n).integers(0, 256, n * 3 * 96 * 96,
                                                                                  dtype=np.uint8).tobytes())
        (folder / f"{split}_y.bin").write_bytes(bytes(i % 10 + 1 for i in range(n)))  # labels 1..10 on disk
    monkeypatch.setattr("benchmark.data.fetch.ensure_dataset", lambda name, data_dir: None)
    data = sets.load_stl10(tmp_path)
    assert data.train_x.shape == (6, 3, 96, 96) and data.test_x.shape == (4, 3, 96, 96)
    assert data.train_y.dtype == torch.int64 and data.train_y.tolist() == [0, 1, 2, 3, 4, 5]
    assert data.num_classes == 10


def test_stl10_missing_gives_manual_download(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailableError, match=r"stl10_binary\.tar\.gz and place it as .*stl10_binary"):
        sets.load_stl10(tmp_path)


# ---------------------------------------------------------------- registry facts


def test_registered_info_has_consistent_class_counts() -> None:
    for name in DATASETS.names():
        info = dataset_info(name)
        if info["task"] == "detection":  # images hold several objects: no images-per-class count
            continue
        counts = info["class_counts"]
        assert counts is not None and len(counts) == info["num_classes"], name
        assert sum(counts) == info["n_train"], name
    assert dataset_info("tiny_imagenet")["class_counts"] == [500] * 200
    assert dataset_info("stl10")["crop_padding"] == 12


def test_digits_class_counts_match_the_split(tmp_path: Path) -> None:
    data = load_dataset("digits", tmp_path)
    assert np.bincount(data.train_y.numpy()).tolist() == dataset_info("digits")["class_counts"]


def test_unknown_and_malformed_specs() -> None:
    with pytest.raises(ConfigError, match=r"unknown dataset 'cifar11'.*Did you mean 'cifar10'.*npz:PATH"):
        dataset_info("cifar11")
    with pytest.raises(ConfigError, match="needs a path"):
        dataset_info("npz")
    with pytest.raises(ConfigError, match="needs a path"):
        dataset_info("image_folder:")
    with pytest.raises(ConfigError, match="SIZE must be a positive"):
        parse_spec("image_folder:some/where:0")
    assert is_known_dataset("cifar10") and is_known_dataset("npz:x.npz") and is_known_dataset("image_folder:d:48")
    assert not is_known_dataset("cifar11") and not is_known_dataset("npz:") and not is_known_dataset("npz")
    spec = parse_spec("image_folder:C:/data/pets:48")
    assert spec is not None and spec.path == Path("C:/data/pets") and spec.size == 48
    spec = parse_spec("image_folder:data/pets")
    assert spec is not None and spec.size == 32


# ---------------------------------------------------------------- npz


def write_npz(path: Path, x_train: np.ndarray, x_test: np.ndarray, compressed: bool = False, **extra: Any) -> None:
    arrays = {"x_train": x_train, "y_train": np.array([0, 2, 1, 2, 0, 2]), "x_test": x_test,
              "y_test": np.array([1, 0, 2]), **extra}
    (np.savez_compressed if compressed else np.savez)(path, **arrays)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW", "NHW"])
def test_npz_layouts(tmp_path: Path, layout: str) -> None:
    rng = np.random.default_rng(0)
    nchw_train = rng.integers(0, 256, (6, 1 if layout == "NHW" else 3, 12, 12), dtype=np.uint8)
    nchw_test = rng.integers(0, 256, (3, nchw_train.shape[1], 12, 12), dtype=np.uint8)

    def stored(x: np.ndarray) -> np.ndarray:
        return {"NHWC": x.transpose(0, 2, 3, 1), "NCHW": x, "NHW": x[:, 0]}[layout]

    path = tmp_path / f"{layout}.npz"
    write_npz(path, stored(nchw_train), stored(nchw_test), compressed=layout == "NHWC")
    spec = f"npz:{path}"
    info = dataset_info(spec)
    assert (info["n_train"], info["n_test"], info["num_classes"]) == (6, 3, 3)
    assert (info["channels"], info["image_size"], info["crop_padding"]) == (nchw_train.shape[1], 12, 1)
    assert info["class_counts"] == [2, 1, 3]
    data = load_dataset(spec, tmp_path)
    assert data.train_x.dtype == torch.uint8 and data.train_y.dtype == torch.int64
    assert np.array_equal(data.train_x.numpy(), nchw_train) and np.array_equal(data.test_x.numpy(), nchw_test)
    assert data.train_y.tolist() == [0, 2, 1, 2, 0, 2] and data.name == spec


def test_npz_errors(tmp_path: Path) -> None:
    x = np.zeros((6, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(ConfigError, match=r"missing\.npz does not exist; it must be an \.npz file with arrays"):
        dataset_info(f"npz:{tmp_path / 'missing.npz'}")
    np.savez(tmp_path / "partial.npz", x_train=x, y_train=np.zeros(6, dtype=np.int64))
    with pytest.raises(ConfigError, match="missing: x_test, y_test"):
        dataset_info(f"npz:{tmp_path / 'partial.npz'}")
    write_npz(tmp_path / "float.npz", x.astype(np.float32), x[:3].astype(np.float32))
    with pytest.raises(ConfigError, match="x_train is float32: store images as uint8"):
        dataset_info(f"npz:{tmp_path / 'float.npz'}")
    write_npz(tmp_path / "wide.npz", np.zeros((6, 8, 9, 3), dtype=np.uint8), x[:3])
    with pytest.raises(ConfigError, match=r"x_train has shape \(6, 8, 9, 3\)"):
        dataset_info(f"npz:{tmp_path / 'wide.npz'}")
    write_npz(tmp_path / "mismatch.npz", x, np.zeros((3, 16, 16, 3), dtype=np.uint8))
    with pytest.raises(ConfigError, match="x_test images are"):
        dataset_info(f"npz:{tmp_path / 'mismatch.npz'}")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ConfigError, match="could not be read"):
        dataset_info(f"npz:{tmp_path / 'text.npz'}")


# ---------------------------------------------------------------- image_folder


def fake_image_folder(root: Path) -> None:
    for k, (cls, n) in enumerate({"dog": 3, "cat": 2, "emu": 1}.items()):
        for i in range(n):
            mode = ("RGB", "L", "RGBA")[i % 3]
            write_image(root / "train" / cls / f"{i}.png", (20 + 9 * i, 15 + 4 * k), mode, value=i + 5 * k)
    write_image(root / "test" / "cat" / "a.jpg", (33, 33))
    write_image(root / "test" / "emu" / "b.PNG", (10, 70))
    (root / "train" / "dog" / "notes.txt").write_text("not an image")


def test_image_folder_info_and_load(tmp_path: Path) -> None:
    fake_image_folder(tmp_path / "pets")
    spec = f"image_folder:{tmp_path / 'pets'}:24"
    info = dataset_info(spec)
    assert info["class_counts"] == [2, 3, 1]  # cat, dog, emu
    assert (info["n_train"], info["n_test"], info["num_classes"], info["channels"], info["image_size"]) == (
        6, 2, 3, 3, 24)
    data = load_dataset(spec, tmp_path)
    assert data.train_x.shape == (6, 3, 24, 24) and data.test_x.shape == (2, 3, 24, 24)
    assert data.train_x.dtype == torch.uint8
    assert data.train_y.tolist() == [0, 0, 1, 1, 1, 2] and data.test_y.tolist() == [0, 2]
    assert dataset_info(f"image_folder:{tmp_path / 'pets'}")["image_size"] == 32


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere does not exist; it must be PATH/train/<class>"):
        dataset_info(f"image_folder:{tmp_path / 'nowhere'}")
    write_image(tmp_path / "a" / "train" / "x" / "1.png", (8, 8))
    with pytest.raises(ConfigError, match=r"test is not a folder"):
        dataset_info(f"image_folder:{tmp_path / 'a'}")
    write_image(tmp_path / "a" / "test" / "y" / "1.png", (8, 8))
    with pytest.raises(ConfigError, match="test classes without a train folder: y"):
        dataset_info(f"image_folder:{tmp_path / 'a'}")


def test_static_info_does_not_import_torch(tmp_path: Path) -> None:
    fake_image_folder(tmp_path / "pets")
    write_npz(tmp_path / "d.npz", np.zeros((6, 8, 8), dtype=np.uint8), np.zeros((3, 8, 8), dtype=np.uint8))
    code = (f"import sys; from benchmark.data import dataset_info; "
            f"dataset_info('image_folder:{tmp_path / 'pets'}'); dataset_info('npz:{tmp_path / 'd.npz'}'); "
            "dataset_info('caltech101'); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
