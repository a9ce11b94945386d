"""Load a dataset (a registered name or a path spec) once per process."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.data import DATASETS, parse_spec, unknown_dataset_message
from benchmark.errors import ConfigError, DatasetUnavailableError

if TYPE_CHECKING:  # torch is imported only when data is really loaded
    from benchmark.data.base import ImageDataset

DEFAULT_DATA_DIR = Path("data")


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """--data-dir wins, then the ALB_DATA environment variable, then ./data."""
    if data_dir is not None:
        return Path(data_dir)
    return Path(os.environ.get("ALB_DATA", DEFAULT_DATA_DIR))


@functools.lru_cache(maxsize=4)
def load_dataset(spec: str, data_dir: Path) -> ImageDataset:
    """A registered dataset from data_dir, or an 'npz:PATH' / 'image_folder:PATH[:SIZE]' / 'coco_json:DIR:FILE'
    spec (its paths are used as written; data_dir plays no part). Detection datasets load as a
    benchmark.detection.dataset.DetectionDataset."""
    parametric = parse_spec(spec)
    if parametric is not None and parametric.kind == "coco_json":
        from benchmark.detection.coco_json import load_coco_json

        assert parametric.annotations is not None
        return load_coco_json(spec, parametric.path.resolve(), parametric.annotations)  # type: ignore[return-value]
    if parametric is not None:
        from benchmark.data.image_sets import load_parametric

        return load_parametric(spec)
    if spec not in DATASETS:
        raise ConfigError(unknown_dataset_message(spec))
    dataset: ImageDataset = DATASETS.get(spec)(data_dir)
    from benchmark.data.base import ImageDataset as Loaded
    from benchmark.detection.dataset import DetectionDataset

    if not isinstance(dataset, Loaded | DetectionDataset):  # a plugin's loader (benchmark.plugins)
        raise ConfigError(f"dataset '{spec}' returned a {type(dataset).__name__}, not a "
                          "benchmark.data.base.ImageDataset")
    info = DATASETS.info(spec)
    if len(dataset.train_y) != info.n_train:
        raise DatasetUnavailableError(
            f"dataset '{spec}': expected {info.n_train} train images, loaded {len(dataset.train_y)}; the files "
            f"in {data_dir} may be incomplete: delete them (and any alb_*/ *_uint8.npz cache next to them) "
            "to download them again")
    return dataset
