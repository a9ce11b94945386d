"""The backbone's starting weights for a cell's ``init``: scratch, imagenet, a self-supervised method
pre-trained on the whole pool (cached), or a checkpoint file."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path

import torch

from benchmark.config import PretrainingConfig
from benchmark.data.base import ImageDataset
from benchmark.errors import ConfigError
from benchmark.inputs import checkpoint_path
from benchmark.models.base import Backbone, build_backbone
from benchmark.pretrain import cache
from benchmark.pretrain.checkpoint import HEAD_PREFIX, OPTIONAL_SUFFIXES, backbone_state, checkpoint_state
from benchmark.pretrain.common import EpochCallback
from benchmark.pretrain.settings import resolve
from benchmark.seeding import derive_seed
from benchmark.store import now_iso
from benchmark.training.augment import Normalizer
from benchmark.training.execution import Execution
from benchmark.versions import INIT_VERSIONS

Pretrainer = Callable[..., list[float]]


def pretrainer(method: str) -> Pretrainer:
    """``benchmark.pretrain.<method>.pretrain_<method>`` (one of config.SSL_METHODS), looked up at call time."""
    fn: Pretrainer = getattr(importlib.import_module(f"benchmark.pretrain.{method}"), f"pretrain_{method}")
    return fn


def initial_backbone_state(init: str, backbone: str, data: ImageDataset, hflip: bool, seed: int,
                           cfg: PretrainingConfig | None, cache_dir: Path, device: torch.device,
                           execution: Execution, dataset_key: str, on_epoch: EpochCallback | None = None,
                           weights_dir: Path | None = None) -> dict[str, torch.Tensor] | None:
    """The backbone's state dict without ``head.*`` (CPU tensors) for ``init``, or None for 'scratch'.

    simsiam | deepcluster | rotation: pre-trained on ``data.train_x`` once per (dataset_key, backbone,
    method, seed, hflip, cfg) and cached in ``cache_dir``; later calls, in this or any process, load it.
    checkpoint:PATH: the file's tensors, validated against the backbone. imagenet: the library's weights from
    ``weights_dir``. The global RNG state is left as it was, so a cache hit and a miss behave the same after.
    """
    if init == "scratch":
        return None
    if (path := checkpoint_path(init)) is not None:
        return checkpoint_state(path, backbone, data.num_classes, data.channels)
    if init == "imagenet":
        return _imagenet_state(backbone, data, weights_dir)
    cfg = cfg or PretrainingConfig()
    key = cache.cache_key(dataset_key, backbone, init, seed, cfg, hflip)
    path = cache.weights_path(cache_dir, key)
    state = cache.load(path)  # fast path: no lock once the result exists
    if state is not None:
        return state
    with cache.exclusive(cache_dir, key):
        state = cache.load(path)  # another process may have finished while we waited
        if state is not None:
            return state
        state, record = _pretrain(init, backbone, data, hflip, seed, cfg, device, execution, on_epoch)
        cache.save(cache_dir, key, state, {**record, "dataset": dataset_key})
    return state


def _pretrain(method: str, backbone: str, data: ImageDataset, hflip: bool, seed: int, cfg: PretrainingConfig,
              device: torch.device, execution: Execution,
              on_epoch: EpochCallback | None) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    fn = pretrainer(method)
    start = time.perf_counter()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(derive_seed(seed, 0, "pretrain"))
        model = execution.prepare_model(build_backbone(backbone, data.num_classes, data.channels).to(device))
        generator = torch.Generator(device=device)
        generator.manual_seed(derive_seed(seed, 0, "pretrain-batches"))
        normalize = Normalizer(data.mean, data.std, device)
        losses = fn(model, data.train_x.to(device), normalize, hflip, cfg, data.num_classes, generator,
                    execution, on_epoch)
    record: dict[str, object] = {
        "method": method, "backbone": backbone, "seed": seed, "hflip": hflip, "pool_size": int(data.train_x.shape[0]),
        "settings": resolve(method, cfg, data.num_classes).as_dict(), "pretraining": cfg.model_dump(mode="json"),
        "losses": [round(x, 6) for x in losses], "seconds": round(time.perf_counter() - start, 3),
        "device": str(device), "precision": execution.precision, "channels_last": execution.channels_last,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "created_at": now_iso(),
        "method_version": INIT_VERSIONS[method]}
    return backbone_state(model), record


def _imagenet_state(backbone: str, data: ImageDataset, weights_dir: Path | None) -> dict[str, torch.Tensor]:
    if weights_dir is None:
        raise ConfigError("init 'imagenet' needs the directory of the ImageNet weights: pass weights_dir")
    try:
        module = importlib.import_module("benchmark.models.imagenet")
    except ModuleNotFoundError as exc:
        if exc.name != "benchmark.models.imagenet":
            raise
        raise ConfigError("init 'imagenet' is not available in this version of alb (no benchmark.models.imagenet); "
                          "use init: scratch or checkpoint:PATH") from exc
    model = build_backbone(backbone, data.num_classes, data.channels)
    module.load_imagenet_weights(model, backbone, weights_dir)
    return backbone_state(model)


def apply_backbone_state(model: Backbone, state: dict[str, torch.Tensor] | None) -> None:
    """Load ``state`` (from :func:`initial_backbone_state`) into ``model``; its classifier stays as it is.
    Anything else missing or unexpected is an error, never silently random weights."""
    if state is None:
        return
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(HEAD_PREFIX) and not k.endswith(OPTIONAL_SUFFIXES)]
    if missing or result.unexpected_keys:
        raise ConfigError(f"initial weights do not fit the model: missing {missing[:5]}, "
                          f"unexpected {result.unexpected_keys[:5]}")
