"""The learner of a detection cell: the same interface as benchmark.learner's (train, evaluate, pool, weights),
with a detector instead of a classifier, mAP instead of accuracy, and box probabilities for the strategies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmark.cell_state import Weights
from benchmark.config import CellConfig, DetectionConfig
from benchmark.data import dataset_info
from benchmark.data.loading import load_dataset
from benchmark.detection.dataset import DetectionDataset
from benchmark.detection.loss_prediction import DetectionLossPrediction
from benchmark.detection.models import build_detector
from benchmark.detection.pool import DetectionPool
from benchmark.detection.train import (
    EVAL_BATCH,
    BoxSet,
    as_floats,
    box_probabilities,
    evaluate_detector,
    train_detector,
)
from benchmark.errors import ConfigError
from benchmark.seeding import derive_seed
from benchmark.training.augment import resolve_flip
from benchmark.training.execution import Execution
from benchmark.training.loop import EpochCallback, TrainResult


@dataclass(frozen=True)
class DetectionCellData:
    """The cell's detection dataset with pool and test images, boxes and labels on the training device."""

    dataset: DetectionDataset
    pool: BoxSet
    test: BoxSet
    hflip: bool
    mean: list[float]
    std: list[float]
    execution: Execution

    @classmethod
    def load(cls, cfg: CellConfig, data_dir: Path, execution: Execution) -> DetectionCellData:
        device = torch.device(execution.device)
        data = load_dataset(cfg.dataset, data_dir)
        if not isinstance(data, DetectionDataset):
            raise ConfigError(f"dataset '{cfg.dataset}' did not load as a detection dataset")

        def on_device(x: torch.Tensor, *lists: list[torch.Tensor]) -> BoxSet:
            return BoxSet(x.to(device), *([t.to(device) for t in items] for items in lists))

        pool = on_device(data.train_x, data.train_boxes, data.train_labels, data.train_difficult)
        test = on_device(data.test_x, data.test_boxes, data.test_labels, data.test_difficult)
        x = data.train_x.to(torch.float64) / 255.0
        mean = [float(v) for v in x.mean(dim=(0, 2, 3))]
        std = [float(v) for v in x.std(dim=(0, 2, 3)).clamp_min(1e-6)]
        return cls(data, pool, test, bool(dataset_info(cfg.dataset)["hflip"]), mean, std, execution)

    @property
    def device(self) -> torch.device:
        return self.pool.x.device

    @property
    def pool_size(self) -> int:
        return int(self.pool.x.shape[0])

    @property
    def train_y(self) -> torch.Tensor:
        return self.dataset.train_y

    def pool_labels(self) -> np.ndarray:
        raise ConfigError("detection images have boxes, not one label: no strategy may read pool labels")

    def unlabeled(self, labeled: np.ndarray) -> np.ndarray:
        return np.setdiff1d(np.arange(self.pool_size), labeled, assume_unique=True)


@dataclass
class DetectionLearner:
    """A detector for one round, with LL4AL's loss-prediction module when training.aux asks for it."""

    model: nn.Module
    data: DetectionCellData
    cfg: CellConfig
    aux: DetectionLossPrediction | None = None
    task = "detection"

    @property
    def detection(self) -> DetectionConfig:
        assert self.cfg.detection is not None
        return self.cfg.detection

    def load_weights(self, weights: Weights) -> None:
        self.model.load_state_dict(weights["model"])
        if self.aux is not None:
            self.aux.load_state_dict(weights["aux"])

    def weights(self) -> Weights:
        aux = self.aux.state_dict() if self.aux is not None else {}
        return {"model": _cpu_copy(self.model.state_dict()), "aux": _cpu_copy(aux)}

    def train(self, labeled: np.ndarray, pseudo_index: np.ndarray, pseudo_label: np.ndarray, round_index: int,
              on_epoch: EpochCallback) -> TrainResult:
        del pseudo_index, pseudo_label  # no detection strategy gives pseudo-labels
        cfg, data = self.cfg, self.data
        generator = torch.Generator(device=data.device)
        generator.manual_seed(derive_seed(cfg.seed, round_index, "train"))
        torch.manual_seed(derive_seed(cfg.seed, round_index, "train"))  # the transforms.v2 draws
        hflip = resolve_flip(cfg.training.flip, data.hflip)
        return train_detector(self.model, data.pool, np.sort(labeled), cfg.training, self.detection, hflip,
                              data.mean, generator, on_epoch, data.execution, self.aux)

    def evaluate(self) -> dict[str, float]:
        return evaluate_detector(self.model, self.data.test, self.data.execution)

    def pool(self, unlabeled: np.ndarray, labeled: np.ndarray) -> DetectionPool:
        del labeled
        data, det = self.data, self.detection
        positions = torch.as_tensor(unlabeled, device=data.device)
        return DetectionPool(lambda: box_probabilities(self.model, data.pool.x[positions], det, data.execution),
                             det.aggregation, det.empty_image, data.dataset.num_classes + 1,
                             None if self.aux is None else lambda: self.predicted_losses(positions))

    def predicted_losses(self, positions: torch.Tensor) -> np.ndarray:
        """The loss-prediction module's predicted loss of the pool images at ``positions``."""
        assert self.aux is not None
        images = self.data.pool.x[positions]
        parts = [self.aux.predict(self.model, as_floats(chunk), self.data.execution)
                 for chunk in images.split(EVAL_BATCH)]
        return torch.cat(parts).cpu().numpy().astype(np.float64) if parts else np.empty(0)


@dataclass
class DetectionLearnerFactory:
    """Fresh detectors of a cell, seeded by the round."""

    cfg: CellConfig
    data: DetectionCellData
    weights_dir: Path

    @classmethod
    def for_cell(cls, cfg: CellConfig, data: DetectionCellData, cache_dir: Path, weights_dir: Path
                 ) -> DetectionLearnerFactory:
        del cache_dir  # no self-supervised pre-training for detectors
        return cls(cfg, data, weights_dir)

    def build(self, round_index: int) -> DetectionLearner:
        cfg, data, det = self.cfg, self.data, self.data.dataset
        assert cfg.detection is not None
        torch.manual_seed(derive_seed(cfg.seed, round_index, "init"))
        model = build_detector(cfg.backbone, det.num_classes, det.channels, det.image_size, data.mean, data.std,
                               cfg.init == "imagenet", self.weights_dir,
                               score_thresh=cfg.detection.score_threshold, nms_thresh=cfg.detection.nms_threshold,
                               detections_per_img=cfg.detection.detections_per_image).to(data.device)
        return DetectionLearner(model, data, cfg, self._aux_module(model))

    def _aux_module(self, model: nn.Module) -> DetectionLossPrediction | None:
        training = self.cfg.training
        if training.aux != "loss_prediction":
            return None
        assert training.aux_weight is not None and training.aux_detach_epoch is not None
        example = as_floats(self.data.pool.x[:1])[0]
        return DetectionLossPrediction.build(model, example, training.aux_weight, training.aux_margin,  # type: ignore[arg-type]
                                             training.aux_detach_epoch)


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in state.items()}
