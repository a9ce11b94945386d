"""Every dataset archive format and the torchvision weights files, end to end: a small file in the real format is
served from a local mirror, `alb data fetch` downloads, verifies and unpacks it, and alb's loader reads back
exactly the images and labels that were written.

The cards' checksums (and the registry's image counts, which the loader checks) are patched for the small
files; where torchvision re-checks a file against its own md5 before reading it (SVHN, STL-10), that md5 is
patched too."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import write_suite
from data_server import DataServer, data_server

from benchmark import cli
from benchmark.data import DATASETS
from benchmark.data import cards as cards_module
from benchmark.data.fetch import MIRROR_ENV
from benchmark.data.loading import load_dataset
from benchmark.errors import DatasetUnavailableError

OFFLINE = "http://127.0.0.1:9"


# ---------------------------------------------------------------- helpers


def small_card(monkeypatch: pytest.MonkeyPatch, name: str, files: dict[str, bytes]) -> None:
    """The card of ``name`` with each file's md5 replaced by the small file's (a card without a published
    checksum keeps None)."""
    card = cards_module.CARDS[name]
    patched = tuple(dataclasses.replace(f, checksum=f"md5:{hashlib.md5(files[f.path]).hexdigest()}")
                    if f.checksum else f for f in card.files)
    monkeypatch.setitem(cards_module.CARDS, name, dataclasses.replace(card, files=patched))


def small_registry(monkeypatch: pytest.MonkeyPatch, name: str, n_train: int, n_test: int) -> None:
    entry = DATASETS._entries[name]
    info = dataclasses.replace(entry.info, n_train=n_train, n_test=n_test)
    monkeypatch.setitem(DATASETS._entries, name, dataclasses.replace(entry, info=info))


def fetch_from_mirror(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str,
                      files: dict[str, bytes], data: Path) -> DataServer:
    """`alb data fetch NAME` against a mirror serving ``files``; each is downloaded once; afterwards offline."""
    small_card(monkeypatch, name, files)
    with data_server() as server:
        server.files.update(files)
        monkeypatch.setenv(MIRROR_ENV, server.url)
        assert cli.main(["data", "fetch", name, "--data-dir", str(data)]) == 0, capsys.readouterr().err
        assert cli.main(["data", "fetch", name, "--data-dir", str(data)]) == 0  # present: nothing downloaded
        assert dict(server.gets) == dict.fromkeys(files, 1)
    out = capsys.readouterr().out
    for path in files:
        assert f"{name}: {data / path}" in out
    monkeypatch.setenv(MIRROR_ENV, OFFLINE)  # the loader must not need the network
    load_dataset.cache_clear()
    return server


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return buffer.getvalue()


def jpeg(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def decoded(body: bytes, size: int | None = None) -> np.ndarray:
    """What a JPEG holds as RGB CHW (JPEG is lossy: compare with the decoded file, not the array written)."""
    from PIL import Image

    image = Image.open(io.BytesIO(body)).convert("RGB")
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def assert_loaded(name: str, data: Path, x_train: np.ndarray, y_train: list[int], x_test: np.ndarray,
                  y_test: list[int]) -> None:
    dataset = load_dataset(name, data)
    assert dataset.train_x.dtype.is_floating_point is False
    assert np.array_equal(dataset.train_x.numpy(), x_train)
    assert dataset.train_y.tolist() == y_train
    assert np.array_equal(dataset.test_x.numpy(), x_test)
    assert dataset.test_y.tolist() == y_test


# ---------------------------------------------------------------- MNIST and Fashion-MNIST: gzip'd idx files


def idx(array: np.ndarray) -> bytes:
    """An idx file (big-endian magic: two zero bytes, type 0x08 = uint8, the number of dimensions; then sizes)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_like(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                    name: str, folder: str) -> None:
    rng = np.random.default_rng(1)
    x_train, x_test = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8), rng.integers(0, 256, (5, 28, 28),
                                                                                         dtype=np.uint8)
    y_train, y_test = rng.integers(0, 10, 12, dtype=np.uint8), rng.integers(0, 10, 5, dtype=np.uint8)
    files = {f"{folder}/raw/{stem}.gz": gzip.compress(idx(array)) for stem, array in (
        ("train-images-idx3-ubyte", x_train), ("train-labels-idx1-ubyte", y_train),
        ("t10k-images-idx3-ubyte", x_test), ("t10k-labels-idx1-ubyte", y_test))}
    small_registry(monkeypatch, name, 12, 5)
    fetch_from_mirror(monkeypatch, capsys, name, files, tmp_path)
    assert (tmp_path / folder / "raw" / "train-images-idx3-ubyte").read_bytes() == idx(x_train)
    assert_loaded(name, tmp_path, x_train[:, None], y_train.tolist(), x_test[:, None], y_test.tolist())


# ---------------------------------------------------------------- CIFAR-100: pickled dicts in a tar.gz


def test_cifar100(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(2)
    arrays = {split: (rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 100, n).tolist())
              for split, n in (("train", 10), ("test", 4))}
    members = {f"cifar-100-python/{split}": pickle.dumps({
        "filenames": [f"img_{i}.png" for i in range(len(y))], "batch_label": f"{split} batch", "fine_labels": y,
        "coarse_labels": [label // 5 for label in y], "data": x}) for split, (x, y) in arrays.items()}
    members["cifar-100-python/meta"] = pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)],
                                                     "coarse_label_names": [f"s{i}" for i in range(20)]})
    small_registry(monkeypatch, "cifar100", 10, 4)
    fetch_from_mirror(monkeypatch, capsys, "cifar100", {"cifar-100-python.tar.gz": tar_gz(members)}, tmp_path)
    (x_train, y_train), (x_test, y_test) = arrays["train"], arrays["test"]
    assert_loaded("cifar100", tmp_path, x_train.reshape(-1, 3, 32, 32), y_train, x_test.reshape(-1, 3, 32, 32),
                  y_test)


# ---------------------------------------------------------------- SVHN: MATLAB v5 .mat files


def test_svhn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import scipy.io
    import torchvision.datasets as tvd

    rng = np.random.default_rng(3)
    images = {"train": rng.integers(0, 256, (7, 3, 32, 32), dtype=np.uint8),
              "test": rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)}
    labels = {"train": [0, 1, 2, 3, 4, 9, 0], "test": [5, 0, 7, 8]}
    files = {}
    for split in ("train", "test"):
        buffer = io.BytesIO()
        # as published: X is H x W x C x N, y is N x 1 with the digit 0 labelled 10
        scipy.io.savemat(buffer, {"X": images[split].transpose(2, 3, 1, 0),
                                  "y": np.asarray([[v or 10] for v in labels[split]], dtype=np.uint8)})
        files[f"{split}_32x32.mat"] = buffer.getvalue()
    # torchvision checks each .mat against its own md5 before reading it
    monkeypatch.setattr(tvd.SVHN, "split_list", {
        split: [url, filename, hashlib.md5(files[filename]).hexdigest()]
        for split, (url, filename, _) in tvd.SVHN.split_list.items() if filename in files})
    small_registry(monkeypatch, "svhn", 7, 4)
    fetch_from_mirror(monkeypatch, capsys, "svhn", files, tmp_path)
    assert_loaded("svhn", tmp_path, images["train"], labels["train"], images["test"], labels["test"])


# ---------------------------------------------------------------- Tiny ImageNet: JPEGs in a zip


def test_tiny_imagenet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(4)
    wnids = ["n01443537", "n01629819", "n01641577"]
    root = "tiny-imagenet-200"
    members: dict[str, bytes] = {f"{root}/wnids.txt": "\n".join(wnids[::-1]).encode(),
                                 f"{root}/words.txt": b"n01443537\tgoldfish\n"}
    x_train, y_train = [], []
    for label, wnid in enumerate(wnids):
        boxes = []
        for i in range(2):
            # one grey image per class: the real set has some, they load as RGB
            pixels = rng.integers(0, 256, (64, 64, 3) if i == 0 else (64, 64), dtype=np.uint8)
            body = jpeg(pixels)
            members[f"{root}/train/{wnid}/images/{wnid}_{i}.JPEG"] = body
            boxes.append(f"{wnid}_{i}.JPEG\t0\t0\t63\t63")
            x_train.append(decoded(body))
            y_train.append(label)
        members[f"{root}/train/{wnid}/{wnid}_boxes.txt"] = "\n".join(boxes).encode()
    x_test, y_test, annotations = [], [], []
    for i, label in enumerate([2, 0, 1, 2]):
        body = jpeg(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        members[f"{root}/val/images/val_{i}.JPEG"] = body
        annotations.append(f"val_{i}.JPEG\t{wnids[label]}\t1\t2\t40\t50")
        x_test.append(decoded(body))
        y_test.append(label)
    members[f"{root}/val/val_annotations.txt"] = ("\n".join(annotations) + "\n").encode()
    members[f"{root}/test/images/test_0.JPEG"] = jpeg(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    small_registry(monkeypatch, "tiny_imagenet", 6, 4)
    fetch_from_mirror(monkeypatch, capsys, "tiny_imagenet", {"tiny-imagenet-200.zip": zipped(members)}, tmp_path)
    assert_loaded("tiny_imagenet", tmp_path, np.stack(x_train), y_train, np.stack(x_test), y_test)
    assert (tmp_path / "tiny-imagenet-200_uint8.npz").is_file()  # the decoded cache; read by the next load
    load_dataset.cache_clear()
    assert_loaded("tiny_imagenet", tmp_path, np.stack(x_train), y_train, np.stack(x_test), y_test)


# ---------------------------------------------------------------- STL-10: raw binary files in a tar.gz


def test_stl10(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import torchvision.datasets as tvd

    rng = np.random.default_rng(5)
    x_train, x_test = (rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8) for n in (5, 3))
    y_train, y_test = [0, 3, 9, 1, 0], [7, 2, 9]

    def images(x: np.ndarray) -> bytes:
        return np.ascontiguousarray(x.transpose(0, 1, 3, 2)).tobytes()  # each channel stored column by column

    bins = {"train_X.bin": images(x_train), "train_y.bin": bytes(v + 1 for v in y_train),  # labels 1..10
            "test_X.bin": images(x_test), "test_y.bin": bytes(v + 1 for v in y_test),
            "unlabeled_X.bin": images(rng.integers(0, 256, (2, 3, 96, 96), dtype=np.uint8))}
    members = {f"stl10_binary/{n}": body for n, body in bins.items()}
    members["stl10_binary/class_names.txt"] = "\n".join(f"class{i}" for i in range(10)).encode()
    members["stl10_binary/fold_indices.txt"] = b"0 1 2\n"
    small_registry(monkeypatch, "stl10", 5, 3)
    fetch_from_mirror(monkeypatch, capsys, "stl10", {"stl10_binary.tar.gz": tar_gz(members)}, tmp_path)
    assert_loaded("stl10", tmp_path, x_train, y_train, x_test, y_test)
    # torchvision's STL10 reads the same arrays (once its md5s are those of the small files)
    for attr in ("train_list", "test_list"):
        monkeypatch.setattr(tvd.STL10, attr, [[n, hashlib.md5(bins[n]).hexdigest()] for n, _ in getattr(tvd.STL10,
                                                                                                          attr)])
    reference = tvd.STL10(str(tmp_path), split="train")
    assert np.array_equal(reference.data, x_train) and reference.labels.tolist() == y_train
    # the unused unlabelled images (2.6 GB in the real archive) may be deleted: alb does not read them
    (tmp_path / "stl10_binary" / "unlabeled_X.bin").unlink()
    load_dataset.cache_clear()
    assert_loaded("stl10", tmp_path, x_train, y_train, x_test, y_test)
    # a truncated image file is named, not a reshape traceback
    (tmp_path / "stl10_binary" / "test_X.bin").write_bytes(bins["test_X.bin"][:-10])
    load_dataset.cache_clear()
    with pytest.raises(DatasetUnavailableError, match=r"test_X\.bin holds"):
        load_dataset("stl10", tmp_path)


# ---------------------------------------------------------------- Caltech-101: a zip holding a .tar.gz


def test_caltech101(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmark.data.image_sets import caltech101_train_counts, stratified_train_mask

    rng = np.random.default_rng(6)
    categories = {"BACKGROUND_Google": 2, "Faces": 4, "accordion": 3, "yin_yang": 5}  # sorted, as torchvision
    inner: dict[str, bytes] = {}
    x_all, y_all = [], []
    classes = [c for c in categories if c != "BACKGROUND_Google"]
    for category, n in categories.items():
        for i in range(1, n + 1):
            shape = (int(rng.integers(40, 90)), int(rng.integers(40, 90)))  # odd sizes: squashed to 64x64
            body = jpeg(rng.integers(0, 256, (*shape, 3) if i % 2 else shape, dtype=np.uint8))
            inner[f"101_ObjectCategories/{category}/image_{i:04d}.jpg"] = body
            if category != "BACKGROUND_Google":  # not a class
                x_all.append(decoded(body, 64))
                y_all.append(classes.index(category))
    annotations = tar_gz({"Annotations/Faces_2/annotation_0001.mat": b"MATLAB 5.0"})
    archive = zipped({"caltech-101/101_ObjectCategories.tar.gz": tar_gz(inner),
                      "caltech-101/Annotations.tar": annotations, "caltech-101/show_annotation.m": b"% matlab\n",
                      # macOS resource forks beside the archives: not tar files, must be skipped
                      "__MACOSX/caltech-101/._101_ObjectCategories.tar.gz": b"\x00\x05\x16\x07 resource fork"})
    labels = np.asarray(y_all)
    assert labels.tolist() == [0] * 4 + [1] * 3 + [2] * 5
    counts = caltech101_train_counts(np.bincount(labels).tolist())
    train = stratified_train_mask(labels, counts, 0)
    small_registry(monkeypatch, "caltech101", int(train.sum()), int((~train).sum()))
    fetch_from_mirror(monkeypatch, capsys, "caltech101", {"caltech101/caltech-101.zip": archive}, tmp_path)
    assert not (tmp_path / "caltech101" / "caltech-101").exists()  # the inner archives are not kept
    images = np.stack(x_all)
    assert_loaded("caltech101", tmp_path, images[train], labels[train].tolist(), images[~train],
                  labels[~train].tolist())


# ---------------------------------------------------------------- torchvision weights: .pth named by sha256 prefix


@pytest.mark.parametrize("backbone", ["resnet18_cifar", "resnet34_cifar", "ssd300_vgg16"])
def test_torchvision_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                             backbone: str) -> None:
    import torch

    from benchmark.data.weights import weights_problems

    state = {"conv1.weight": torch.arange(12, dtype=torch.float32).reshape(1, 3, 2, 2), "fc.bias": torch.ones(3)}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    body = buffer.getvalue()
    prefix = hashlib.sha256(body).hexdigest()[:8]
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no copy in torch.hub's cache counts
    data = tmp_path / "data"
    original = cards_module.WEIGHTS[backbone]
    with data_server() as server:
        remote_name = f"models/{backbone}-{prefix}.pth"
        server.files[remote_name] = body
        # the card's own URL (no mirror): the file is published under a name holding its sha256 prefix
        monkeypatch.delenv(MIRROR_ENV)
        monkeypatch.setitem(cards_module.WEIGHTS, backbone, dataclasses.replace(
            original, url=f"{server.url}/{remote_name}", checksum=f"sha256:{prefix}"))
        assert weights_problems(backbone, data) == []
        assert weights_problems(backbone, data) == []  # present and verified: not downloaded again
        assert server.gets[remote_name] == 1
    placed = data / original.path
    loaded = torch.load(placed, map_location="cpu", weights_only=True)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    monkeypatch.setenv(MIRROR_ENV, OFFLINE)
    assert weights_problems(backbone, data, allow_download=False) == []

    # a file whose sha256 does not start with the published prefix is refused and not placed
    other = tmp_path / "other"
    with data_server() as server:
        server.files[original.path] = body + b"tampered"
        monkeypatch.setenv(MIRROR_ENV, server.url)
        problems = weights_problems(backbone, other)
    assert len(problems) == 1 and "damaged or truncated" in problems[0].reason and prefix in problems[0].reason
    assert not (other / original.path).exists()


def test_weights_fetched_for_a_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """`alb data fetch SUITE` fetches the weights of its `init: imagenet` backbones from a mirror."""
    body = b"not a real checkpoint, only bytes to verify"
    prefix = hashlib.sha256(body).hexdigest()[:8]
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    original = cards_module.WEIGHTS["resnet18_cifar"]
    monkeypatch.setitem(cards_module.WEIGHTS, "resnet18_cifar",
                        dataclasses.replace(original, checksum=f"sha256:{prefix}"))
    suite = write_suite(tmp_path, "weights_suite", """\
name: weights_suite
defaults:
  dataset: digits
  backbone: resnet18_cifar
  init: imagenet
  budget: {initial: 10, query: 10, rounds: 1}
  training: {epochs: 1, batch_size: 16, optimizer: {name: sgd, lr: 0.05}}
matrix:
  strategy: [random]
""")
    data = tmp_path / "data"
    with data_server() as server:
        server.files[original.path] = body
        monkeypatch.setenv(MIRROR_ENV, server.url)
        assert cli.main(["data", "fetch", str(suite), "--data-dir", str(data)]) == 0, capsys.readouterr().err
        assert server.gets[original.path] == 1
    out = capsys.readouterr().out
    assert f"init imagenet, resnet18_cifar: {data / original.path}" in out
    assert (data / original.path).read_bytes() == body


def damaged_deflate_zip() -> bytes:
    """A zip in Tiny ImageNet's layout whose deflated data is damaged so that zlib itself fails (zlib.error, not
    zipfile's BadZipFile): the bytes flipped are found once, by trying, so the test does not hang on zlib's
    internals."""
    body = bytes(np.random.default_rng(7).integers(0, 20, 200_000, dtype=np.uint8))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("tiny-imagenet-200/train/n01443537/images/n01443537_0.JPEG", body)
        zf.writestr("tiny-imagenet-200/val/val_annotations.txt", b"")
    good = buffer.getvalue()
    for start in range(100, len(good) - 300, 101):
        damaged = bytearray(good)
        for i in range(start, start + 8):
            damaged[i] ^= 0x5A
        try:
            with zipfile.ZipFile(io.BytesIO(bytes(damaged))) as zf:
                for name in zf.namelist():
                    zf.read(name)
        except zlib.error:
            return bytes(damaged)
        except zipfile.BadZipFile:
            continue
    raise AssertionError("no damage found that zlib rejects")


def test_a_damaged_zip_without_checksum_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Tiny ImageNet has no published checksum: a damaged download is caught only when it is unpacked."""
    with data_server() as server:
        server.files["tiny-imagenet-200.zip"] = damaged_deflate_zip()
        monkeypatch.setenv(MIRROR_ENV, server.url)
        assert cli.main(["data", "fetch", "tiny_imagenet", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "tiny-imagenet-200.zip is damaged or truncated: unpacking it failed (error:" in err
    assert "delete it and fetch it again" in err and "Traceback" not in err
    assert not (tmp_path / "tiny-imagenet-200").exists()
    assert [p.name for p in (tmp_path / ".alb").iterdir()] == ["locks"]  # no unpack.* folder left behind
