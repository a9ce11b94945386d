"""On-disk cache of pre-trained backbones: ``<cache_dir>/<key>.pt`` (a plain state dict without the head,
usable as ``init: checkpoint:PATH`` too) and ``<key>.json`` (method, settings, per-epoch losses, seconds).

Writes are atomic, and an exclusive lock on ``<key>.lock`` (:func:`benchmark.ops.locks.exclusive_lock`) makes a
second process wait for the first one's result instead of pre-training the same thing again."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from benchmark.config import PretrainingConfig
from benchmark.ops.locks import exclusive_lock
from benchmark.pretrain.errors import PretrainCacheError
from benchmark.store import atomic_write

# A method's cache key holds its one version, benchmark.versions.INIT_VERSIONS (also in the ids of the cells that
# use it): bump it there when pre-training's recipe changes, and its old caches miss. Keys up to the split_batches
# fix held one shared "version" (3 last) instead; the new key name keeps them from ever matching.


def cache_key(dataset_key: str, backbone: str, method: str, seed: int, cfg: PretrainingConfig,
              hflip: bool) -> str:
    """sha256 of everything that determines the pre-trained weights."""
    from benchmark.versions import INIT_VERSIONS

    payload = {"method_version": INIT_VERSIONS[method], "dataset": dataset_key, "backbone": backbone, "method": method,
               "seed": seed, "hflip": hflip, "pretraining": cfg.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def weights_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"{key}.pt"


def sidecar_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"{key}.json"


@contextlib.contextmanager
def exclusive(cache_dir: Path, key: str) -> Iterator[None]:
    """Hold ``<key>.lock`` exclusively (blocking until another process or thread releases it)."""
    with exclusive_lock(cache_dir / f"{key}.lock"):
        yield


def load(path: Path) -> dict[str, torch.Tensor] | None:
    """The cached state dict, or None when there is none yet."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PretrainCacheError(f"cannot read the cached pre-trained weights '{path}' ({type(exc).__name__}); "
                                 "delete it (and its .json) to pre-train again") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainCacheError(f"'{path}' is not a state dict; delete it (and its .json) to pre-train again")
    return state


def save(cache_dir: Path, key: str, state: dict[str, torch.Tensor], record: dict[str, Any]) -> Path:
    """Write the weights, then the sidecar (both atomically); a reader takes the weights as the result."""
    path = weights_path(cache_dir, key)
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    atomic_write(sidecar_path(cache_dir, key),
                 lambda tmp: tmp.write_text(json.dumps({"key": key, "weights": path.name, **record}, indent=2)))
    return path
