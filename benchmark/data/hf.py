"""``hf:NAME[:CONFIG][?OPTIONS]``: an image-classification dataset of the Hugging Face Hub, through ``datasets``.

NAME is a Hub id (``uoft-cs/cifar10``), or a local copy: a folder written by ``save_to_disk`` or a folder of
parquet files (``train-*.parquet``, ``test-*.parquet``, as the Hub stores them). OPTIONS (``&``-separated
``key=value``) name what differs from the defaults: ``image=`` and ``label=`` the columns (default ``image``,
``label``), ``train=`` and ``test=`` the splits (default ``train`` and ``test``), ``size=`` the side images are
resized to (default: the first train image's width). Example: ``hf:uoft-cs/cifar100?image=img&label=fine_label``.

The train split is the pool, the test split the test set. Every image is converted to RGB, resized to SIZE x
SIZE and the arrays cached (as image folders are) in ``$ALB_CACHE_DIR/hf/`` under a key of the spec and the
splits' ``datasets`` fingerprints; the sha256 of the converted arrays is the dataset's content identity in
cell ids (:func:`benchmark.inputs.dataset_digest`). Offline, Hub ids load from the ``datasets`` cache.
``datasets`` is imported only here (the optional extra ``alb[hf]``).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np

from benchmark.errors import ConfigError

PREFIX = "hf:"
OPTIONS = ("image", "label", "train", "test", "size")
FORM = "'hf:NAME[:CONFIG][?image=COL&label=COL&train=SPLIT&test=SPLIT&size=N]'"
ARRAYS_VERSION = 1  # of the conversion below: a new one makes new caches


@dataclass(frozen=True)
class HfSpec:
    spec: str
    name: str
    config: str | None
    image: str = "image"
    label: str = "label"
    train: str = "train"
    test: str = "test"
    size: int | None = None

    @property
    def local(self) -> Path | None:
        path = Path(self.name).expanduser()
        return path.resolve() if path.exists() else None


def parse(spec: str) -> HfSpec:
    body, _, query = spec.removeprefix(PREFIX).partition("?")
    name, _, config = body.partition(":") if not Path(body).expanduser().exists() else (body, "", "")
    if not name.strip():
        raise ConfigError(f"dataset '{spec}' needs a name: write {FORM}")
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)) if query else ():
        if key not in OPTIONS or not value:
            raise ConfigError(f"dataset '{spec}': unknown or empty option '{key}'; options: {', '.join(OPTIONS)}")
        options[key] = value
    if "size" in options:
        if not options["size"].isdigit() or int(options["size"]) < 1:
            raise ConfigError(f"dataset '{spec}': size must be a positive number of pixels")
        options["size"] = int(options["size"])
    return HfSpec(spec, name, config or None, **options)


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError("an 'hf:' dataset needs the datasets library: pip install 'alb[hf]' "
                          "(or pip install datasets)") from None
    return datasets


def open_splits(hf: HfSpec) -> tuple[Any, Any]:
    """The train and test ``datasets.Dataset`` of the spec (memory-mapped, nothing decoded yet)."""
    datasets = _datasets()
    local = hf.local
    try:
        if local is not None and local.is_dir() and any((local / f).is_file() for f in
                                                        ("dataset_dict.json", "state.json")):
            loaded = datasets.load_from_disk(str(local))
        elif local is not None:
            loaded = datasets.load_dataset("parquet", data_dir=str(local)) if local.is_dir() else \
                datasets.load_dataset("parquet", data_files={"train": str(local)})
        else:
            loaded = datasets.load_dataset(hf.name, hf.config)
    except Exception as exc:  # datasets raises many kinds: offline, unknown repository, bad files
        hint = ("; offline it loads from the datasets cache (HF_DATASETS_OFFLINE=1) or a local copy: "
                "hf:PATH of a save_to_disk folder or of parquet files") if local is None else ""
        raise ConfigError(f"dataset '{hf.spec}' could not be loaded ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}){hint}") from None
    if not isinstance(loaded, datasets.DatasetDict):
        raise ConfigError(f"dataset '{hf.spec}' has no named splits; it needs '{hf.train}' and '{hf.test}'")
    for split in (hf.train, hf.test):
        if split not in loaded:
            raise ConfigError(f"dataset '{hf.spec}' has no split '{split}' (splits: {', '.join(loaded)}); "
                              f"name one with ?{'train' if split == hf.train else 'test'}=SPLIT")
    for column in (hf.image, hf.label):
        if column not in loaded[hf.train].column_names:
            raise ConfigError(f"dataset '{hf.spec}' has no column '{column}' (columns: "
                              f"{', '.join(loaded[hf.train].column_names)}); name the image and label columns "
                              "with ?image=COL&label=COL")
    return loaded[hf.train], loaded[hf.test]


def _convert(hf: HfSpec, split: Any, size: int) -> tuple[np.ndarray, np.ndarray]:
    from benchmark.data.decoding import decode_image

    images = np.empty((len(split), 3, size, size), dtype=np.uint8)
    labels = np.asarray(split[hf.label], dtype=np.int64)
    for i, row in enumerate(split.select_columns([hf.image])):
        try:
            images[i] = decode_image(row[hf.image], size).transpose(2, 0, 1)
        except Exception as exc:  # PIL's many kinds for a bad image
            raise ConfigError(f"dataset '{hf.spec}': image {i} could not be decoded ({exc})") from None
    return images, labels


def cache_path(hf: HfSpec, train: Any, test: Any) -> Path:
    from benchmark.digests import alb_cache_root

    key = hashlib.sha256(f"{ARRAYS_VERSION}\0{hf}\0{train._fingerprint}\0{test._fingerprint}".encode())
    return alb_cache_root() / "hf" / f"{key.hexdigest()[:24]}.npz"


@functools.lru_cache(maxsize=8)
def prepare(spec: str) -> Path:
    """The cached arrays of ``spec`` (converted now when missing): x_train, y_train, x_test, y_test, classes."""
    from benchmark.data.decoding import read_cache, save_arrays

    hf = parse(spec)
    train, test = open_splits(hf)
    path = cache_path(hf, train, test)
    if read_cache(path) is not None:
        return path
    size = hf.size or int(train[0][hf.image].size[0])
    (x_train, y_train), (x_test, y_test) = _convert(hf, train, size), _convert(hf, test, size)
    feature = train.features[hf.label]
    names = list(getattr(feature, "names", None) or [])
    num_classes = max(len(names), int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1)
    if min(y_train.min(initial=0), y_test.min(initial=0)) < 0 or num_classes < 2:
        raise ConfigError(f"dataset '{spec}': labels must be class numbers 0..C-1 with C >= 2")
    classes = np.asarray(names if len(names) == num_classes else [str(c) for c in range(num_classes)])
    save_arrays(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, classes=classes)
    return path


def arrays(spec: str) -> dict[str, np.ndarray]:
    from benchmark.data.decoding import read_cache

    loaded = read_cache(prepare(spec))
    if loaded is None:
        raise ConfigError(f"dataset '{spec}': its converted arrays in {prepare(spec)} cannot be read; delete "
                          "the file to convert the dataset again")
    return loaded


def info(spec: str) -> dict[str, Any]:
    """Static facts (see benchmark.data.dataset_info) from the converted arrays."""
    data = arrays(spec)
    counts = np.bincount(data["y_train"], minlength=len(data["classes"])).tolist()
    size = int(data["x_train"].shape[-1])
    return {"n_train": len(data["y_train"]), "n_test": len(data["y_test"]), "num_classes": len(counts),
            "channels": 3, "image_size": size, "crop_padding": max(1, size // 8), "hflip": True,
            "balanced": len(set(counts)) == 1, "class_counts": counts}


def digest(spec: str) -> str:
    """sha256 of the converted arrays (the content a cell reads), cached by the cache file's signature."""
    from benchmark.digests import file_digest

    return file_digest(prepare(spec), f"dataset '{spec}'")
