"""Load a registered dataset once per process."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.data import DATASETS

if TYPE_CHECKING:  # torch is imported only when data is really loaded
    from benchmark.data.base import ImageDataset

DEFAULT_DATA_DIR = Path("data")


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """--data-dir wins, then the ALB_DATA environment variable, then ./data."""
    if data_dir is not None:
        return Path(data_dir)
    return Path(os.environ.get("ALB_DATA", DEFAULT_DATA_DIR))


@functools.lru_cache(maxsize=4)
def load_dataset(name: str, data_dir: Path) -> ImageDataset:
    dataset: ImageDataset = DATASETS.get(name)(data_dir)
    info = DATASETS.entry(name).info
    if len(dataset.train_y) != info["n_train"]:
        raise ValueError(f"dataset '{name}': expected {info['n_train']} train images, "
                         f"loaded {len(dataset.train_y)}; the files in {data_dir} may be incomplete")
    return dataset
