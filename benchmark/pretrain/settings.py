"""The hyper-parameters of each pre-training method: what ``PretrainingConfig`` leaves as null is
filled with the method's own published value.

- simsiam (seed 003 Sec. 4, Chen & He 2021): SGD, lr 0.03 x batch / 256, weight decay 1e-4, momentum 0.9,
  cosine decay over all epochs; CIFAR variant of the heads (2-layer projector of width 2048, predictor
  bottleneck 512).
- deepcluster (seed 004 l.190 "follow the settings of [5]", Caron et al. 2018; their code
  facebookresearch/deepcluster): batch 256 (main.py l.54), SGD with constant lr 0.05 (l.41), weight decay
  1e-5 (l.43, "pow -5"), momentum 0.9 (l.56) for the backbone and none for the top layer (l.235-239); k-means
  re-run every epoch (l.45 reassign 1), classifier re-initialised N(0, 0.01) after each clustering
  (l.179-181); random resized crop of area 0.08-1 + flip (clustering.py l.142-143); k = 10 x the number of
  classes unless ``clusters`` is given (their 10000 clusters for ImageNet's 1000 classes, main.sh l.13).
- rotation (seed 001 App. on unsupervised pre-training, Gidaris et al. 2018 Sec. 3 for CIFAR): SGD, lr 0.1,
  weight decay 5e-4, momentum 0.9, lr x 0.2 after 30 %, 60 % and 80 % of the epochs (their 30/60/80 of 100).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from benchmark.config import PretrainingConfig

Schedule = Literal["cosine", "constant", "steps"]

BASE_LR = {"simsiam": 0.03, "deepcluster": 0.05, "rotation": 0.1}
LR_REFERENCE_BATCH = {"simsiam": 256}  # methods whose lr scales linearly with the batch size
WEIGHT_DECAY = {"simsiam": 1e-4, "deepcluster": 1e-5, "rotation": 5e-4}
SCHEDULE: dict[str, Schedule] = {"simsiam": "cosine", "deepcluster": "constant", "rotation": "steps"}
STEP_FRACTIONS = (0.3, 0.6, 0.8)  # rotation: Gidaris et al.'s epochs 30, 60, 80 of 100
STEP_GAMMA = 0.2
CLUSTERS_PER_CLASS = 10
BATCH_SIZE = {"simsiam": 512, "deepcluster": 256, "rotation": 512}  # rotation: alb's earlier default, kept
# DeepCluster's RandomResizedCrop(224) with torchvision's default scale (clustering.py l.142)
DEEPCLUSTER_CROP_SCALE = (0.08, 1.0)


@dataclass(frozen=True)
class Hyper:
    """Resolved settings of one pre-training run (every null replaced by the method's default)."""

    method: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    momentum: float
    schedule: Schedule
    clusters: int | None
    crop_scale: tuple[float, float] | None = None  # deepcluster only

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve(method: str, cfg: PretrainingConfig, num_classes: int) -> Hyper:
    """``cfg``'s nulls filled with ``method``'s own values; config.CellConfig has validated both."""
    batch = BATCH_SIZE[method] if cfg.batch_size is None else cfg.batch_size
    lr = cfg.lr
    if lr is None:
        lr = BASE_LR[method] * (batch / LR_REFERENCE_BATCH[method] if method in LR_REFERENCE_BATCH else 1)
    wd = WEIGHT_DECAY[method] if cfg.weight_decay is None else cfg.weight_decay
    clusters, crop = None, None
    if method == "deepcluster":
        clusters = cfg.clusters if cfg.clusters is not None else CLUSTERS_PER_CLASS * num_classes
        crop = DEEPCLUSTER_CROP_SCALE if cfg.crop_scale is None else cfg.crop_scale
    return Hyper(method, cfg.epochs, batch, lr, wd, cfg.momentum, SCHEDULE[method], clusters, crop)


def lr_at(hyper: Hyper, epoch: int) -> float:
    """The learning rate of (0-based) ``epoch``."""
    if hyper.schedule == "cosine":
        return hyper.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / hyper.epochs))
    if hyper.schedule == "steps":
        drops = sum(epoch >= round(f * hyper.epochs) for f in STEP_FRACTIONS)
        return hyper.lr * STEP_GAMMA**drops
    return hyper.lr
