"""Training, evaluation and the pool's box probabilities of a torchvision SSD (benchmark.detection.models)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torchvision.ops import batched_nms, clip_boxes_to_image

from benchmark.config import DetectionConfig, TrainingConfig
from benchmark.detection.augment import augment_batch, ssd_transform
from benchmark.detection.loss_prediction import DetectionLossPrediction
from benchmark.detection.metrics import detection_map
from benchmark.training.execution import Execution
from benchmark.training.loop import (
    EpochCallback,
    TrainResult,
    end_epoch,
    epoch_batches,
    make_optimizer,
    make_scheduler,
    optimizer_step,
)

EVAL_BATCH = 64


@dataclass(frozen=True)
class BoxSet:
    """Images (uint8 NCHW on the training device) with their boxes, labels and difficult flags."""

    x: torch.Tensor
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    difficult: list[torch.Tensor]

    def targets(self, positions: list[int]) -> list[dict[str, torch.Tensor]]:
        return [{"boxes": self.boxes[i], "labels": self.labels[i], "difficult": self.difficult[i]} for i in positions]


def as_floats(images: torch.Tensor) -> list[torch.Tensor]:
    return list(images.float().div_(255.0).unbind(0))


def train_detector(model: nn.Module, data: BoxSet, labeled: np.ndarray, training: TrainingConfig,
                   detection: DetectionConfig, hflip: bool, fill: list[float], generator: torch.Generator,
                   on_epoch: EpochCallback | None, execution: Execution,
                   aux: DetectionLossPrediction | None = None) -> TrainResult:
    """SSD's multibox loss (smooth-L1 boxes + hard-negative-mined cross-entropy, torchvision's) on the labeled
    images, with the SSD augmentation when training.augmentation is standard; with ``aux`` (training.aux:
    loss_prediction), LL4AL's loss-prediction module is trained jointly."""
    start = time.perf_counter()
    device = data.x.device
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    if aux is not None:
        aux.module.train()
        params += aux.parameters()
    optimizer = make_optimizer(params, training.optimizer)
    scheduler = make_scheduler(optimizer, training.schedule, training.epochs)
    transform = (ssd_transform(data.x.shape[-1], data.x.shape[1], hflip, detection.expand_max, fill)
                 if training.augmentation == "standard" else None)
    positions = torch.as_tensor(labeled, device=device)
    final = float("nan")
    for epoch in range(training.epochs):
        loss_sum = torch.zeros((), device=device)
        for batch in epoch_batches(len(labeled), training.batch_size, generator, device):
            chosen = positions[batch].tolist()
            if transform is not None:
                images, targets = augment_batch(data.x[chosen], [data.boxes[i] for i in chosen],
                                                [data.labels[i] for i in chosen], transform)
            else:
                images = as_floats(data.x[chosen])
                targets = [{"boxes": data.boxes[i], "labels": data.labels[i]} for i in chosen]
            with execution.autocast():
                if aux is None:
                    loss = sum(model(images, targets).values())
                else:
                    loss = aux.training_loss(model, images, targets, epoch)
            optimizer_step(loss, optimizer)  # type: ignore[arg-type]
            loss_sum += loss.detach() * len(chosen)  # type: ignore[union-attr]
        final = end_epoch(scheduler, loss_sum, len(labeled), epoch, training.epochs, on_epoch)
    return TrainResult(final, time.perf_counter() - start)


@torch.no_grad()
def detect(model: nn.Module, images: torch.Tensor, execution: Execution) -> list[dict[str, torch.Tensor]]:
    """The detector's own detections (its score threshold, per-class NMS, top detections) for every image."""
    model.eval()
    out: list[dict[str, torch.Tensor]] = []
    for chunk in images.split(EVAL_BATCH):
        with execution.autocast():
            out += [{k: v.float() if v.is_floating_point() else v for k, v in d.items()}
                    for d in model(as_floats(chunk))]
    return out


def evaluate_detector(model: nn.Module, test: BoxSet, execution: Execution) -> dict[str, float]:
    """mAP@0.5 and COCO mAP@[.5:.95] on the test split (benchmark.detection.metrics)."""
    return detection_map(detect(model, test.x, execution), test.targets(list(range(len(test.boxes)))))


@torch.no_grad()
def box_probabilities(model: nn.Module, images: torch.Tensor, detection: DetectionConfig,
                      execution: Execution) -> list[np.ndarray]:
    """Per image, the softmax over background + classes of each box the detector keeps: anchors whose best
    object class reaches detection.score_threshold, the 400 best, class-wise NMS at detection.nms_threshold,
    at most detection.detections_per_image (one box per anchor, labelled with its best class)."""
    model.eval()
    result: list[np.ndarray] = []
    for chunk in images.split(EVAL_BATCH):
        with execution.autocast():
            batch, _ = model.transform(as_floats(chunk))
            features = model.backbone(batch.tensors)
            features = list(features.values()) if isinstance(features, dict) else [features]
            head = model.head(features)
            anchors = model.anchor_generator(batch, features)
        probs = torch.softmax(head["cls_logits"].float(), dim=-1)
        for i, image_size in enumerate(batch.image_sizes):
            boxes = clip_boxes_to_image(model.box_coder.decode_single(head["bbox_regression"][i].float(),
                                                                      anchors[i]), image_size)
            score, label = probs[i, :, 1:].max(dim=-1)
            candidates = torch.nonzero(score > detection.score_threshold).flatten()
            candidates = candidates[score[candidates].argsort(descending=True, stable=True)[:400]]
            keep = batched_nms(boxes[candidates], score[candidates], label[candidates], detection.nms_threshold)
            kept = candidates[keep[:detection.detections_per_image]]
            result.append(probs[i, kept].cpu().numpy().astype(np.float64))
    return result
