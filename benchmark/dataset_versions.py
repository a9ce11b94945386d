"""Versions of the dataset loaders given by spec (``npz:PATH``, ``image_folder:PATH``, ``hf:NAME``;
benchmark.data.parse_spec).

A leaf module: :mod:`benchmark.versions` (cell ids, fingerprints) and the image_folder cache
(benchmark/data/decoding.py, which keys its files by the loader's version) read them without importing each
other. Bump a loader's version here when its behaviour changes.
"""

from __future__ import annotations

PARAMETRIC_DATASET_VERSIONS: dict[str, int] = {"npz": 1, "image_folder": 1, "hf": 1, "coco_json": 1}
