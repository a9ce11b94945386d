"""LL4AL's loss prediction on an SSD (Yoo & Kweon 2019, Sec. 4.2: SSD on VOC): the module of
:mod:`benchmark.training.aux` (global average pooling, FC + ReLU per map, a linear head) reads the
multi-scale feature maps the SSD head reads (``model.backbone``'s outputs), and learns to rank the
images of a batch by their detection loss with LL4AL's margin ranking loss.

The target loss of an image is its share of torchvision's multibox loss: torchvision sums the smooth-L1
box loss and the cross-entropy of the positive and hard-negative anchors over the batch and divides by the
batch's number of positive anchors N. Image i's share is ``B * S_i / N`` (S_i: its own sum, B images), so
that the mean over the batch is exactly torchvision's loss, which stays the detector's training loss.
Within a batch, where the ranking loss compares images, this ranks images by S_i.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.detection.ssd import SSD
from torchvision.ops import box_iou

from benchmark.training.aux import LossPredictionModule, ranking_loss
from benchmark.training.execution import Execution

Targets = list[dict[str, torch.Tensor]]


def multibox_image_losses(cls_logits: torch.Tensor, bbox_regression: torch.Tensor, targets: Targets,
                          anchors: list[torch.Tensor], matched: list[torch.Tensor], model: SSD) -> torch.Tensor:
    """Each image's share B * S_i / N of torchvision's SSD multibox loss (same matching, same hard-negative
    mining at ``model.neg_to_pos_ratio``); their mean is torchvision's compute_loss total."""
    box_sums, cls_targets = [], []
    for target, regression, image_anchors, image_matched in zip(targets, bbox_regression, anchors, matched,
                                                                strict=True):
        foreground = torch.where(image_matched >= 0)[0]
        gt = image_matched[foreground]
        encoded = model.box_coder.encode_single(target["boxes"][gt], image_anchors[foreground])
        box_sums.append(F.smooth_l1_loss(regression[foreground], encoded, reduction="sum"))
        classes = torch.zeros(cls_logits.shape[1], dtype=target["labels"].dtype, device=target["labels"].device)
        classes[foreground] = target["labels"][gt]
        cls_targets.append(classes)
    cls_target = torch.stack(cls_targets)
    num_classes = cls_logits.shape[-1]
    cls_loss = F.cross_entropy(cls_logits.reshape(-1, num_classes), cls_target.reshape(-1),
                               reduction="none").view(cls_target.shape)
    positive = cls_target > 0
    # hard negatives as torchvision ranks them (per image, batched): the neg_to_pos_ratio x positives highest
    negative_loss = cls_loss.clone()
    negative_loss[positive] = -float("inf")
    rank = negative_loss.sort(1, descending=True)[1].sort(1)[1]
    negative = rank < model.neg_to_pos_ratio * positive.sum(1, keepdim=True)
    zero = cls_loss.new_zeros(())
    # torchvision adds the positive and the negative sums separately (an anchor in both counts twice)
    per_image = (torch.stack(box_sums) + torch.where(positive, cls_loss, zero).sum(1)
                 + torch.where(negative, cls_loss, zero).sum(1))
    return per_image * len(targets) / max(1, int(positive.sum()))


def ssd_image_losses(model: SSD, images: list[torch.Tensor], targets: Targets
                     ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """SSD's training forward pass (torchvision's SSD.forward up to its losses) giving each image's share of
    the multibox loss and the feature maps the head read."""
    batch, resized = model.transform(images, targets)
    assert resized is not None
    features = model.backbone(batch.tensors)
    maps = list(features.values()) if isinstance(features, dict) else [features]
    head = model.head(maps)
    anchors = model.anchor_generator(batch, maps)
    matched = [torch.full((a.shape[0],), -1, dtype=torch.int64, device=a.device) if t["boxes"].numel() == 0
               else model.proposal_matcher(box_iou(t["boxes"], a)) for a, t in zip(anchors, resized, strict=True)]
    losses = multibox_image_losses(head["cls_logits"], head["bbox_regression"], resized, anchors, matched, model)
    return losses, maps


def backbone_maps(model: SSD, images: list[torch.Tensor]) -> list[torch.Tensor]:
    features = model.backbone(model.transform(images)[0].tensors)
    return list(features.values()) if isinstance(features, dict) else [features]


@dataclass
class DetectionLossPrediction:
    """A loss-prediction module on an SSD's feature maps, with LL4AL's training settings."""

    module: LossPredictionModule
    weight: float
    margin: float
    detach_epoch: int

    @classmethod
    def build(cls, model: SSD, example: torch.Tensor, weight: float, margin: float,
              detach_epoch: int) -> DetectionLossPrediction:
        """Size the branches from one eval pass of ``example`` (a float image in [0, 1])."""
        was_training = model.training
        model.eval()
        with torch.no_grad():
            maps = backbone_maps(model, [example])
        model.train(was_training)
        module = LossPredictionModule([int(m.shape[1]) for m in maps]).to(example.device)
        return cls(module, weight, margin, detach_epoch)

    def training_loss(self, model: SSD, images: list[torch.Tensor], targets: Targets, epoch: int) -> torch.Tensor:
        """The detector's multibox loss plus lambda x the ranking loss of the predicted image losses."""
        per_image, maps = ssd_image_losses(model, images, targets)
        maps = [m.float() for m in maps]
        if epoch >= self.detach_epoch:  # as for classification: the ranking loss stops shaping the backbone
            maps = [m.detach() for m in maps]
        return per_image.mean() + self.weight * ranking_loss(self.module(maps), per_image.float(), self.margin)

    @torch.no_grad()
    def predict(self, model: SSD, images: list[torch.Tensor], execution: Execution) -> torch.Tensor:
        """Predicted losses of float images in [0, 1], everything in eval mode."""
        model.eval()
        self.module.eval()
        with execution.autocast():
            maps = backbone_maps(model, images)
        return self.module([m.float() for m in maps])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)

    def parameters(self) -> list[nn.Parameter]:
        return list(self.module.parameters())
