"""The SSD training augmentation with boxes, through torchvision.transforms.v2, on the training device.

The recipe of Liu et al. 2016 as torchvision's detection references apply it: photometric distortion,
expand (zoom out onto a canvas of the mean colour, up to ``expand_max`` times the side), a random IoU crop,
a horizontal flip (where the dataset allows it), then back to the stored square size. Boxes that lose their
area are dropped. The transforms draw from torch's global generator, which the trainer seeds per round.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


def ssd_transform(size: int, channels: int, hflip: bool, expand_max: float, fill: list[float]) -> v2.Compose:
    """The transform of one training image (a float tv_tensors.Image in [0, 1]) and its target dict."""
    steps: list[v2.Transform] = []
    if channels == 3:
        steps.append(v2.RandomPhotometricDistort(p=0.5))
    else:  # hue and saturation need colour: brightness and contrast only
        steps.append(v2.RandomApply([v2.ColorJitter(brightness=(0.875, 1.125), contrast=(0.5, 1.5))], p=0.5))
    if expand_max > 1:
        steps.append(v2.RandomZoomOut(fill={tv_tensors.Image: fill, "others": 0}, side_range=(1.0, expand_max),
                                      p=0.5))
    steps.append(v2.RandomIoUCrop())
    if hflip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    steps += [v2.Resize((size, size), antialias=True), v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes()]
    return v2.Compose(steps)


def augment_batch(images: torch.Tensor, boxes: list[torch.Tensor], labels: list[torch.Tensor],
                  transform: v2.Compose) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Float images in [0, 1] and targets of a uint8 batch, each image augmented independently."""
    size = images.shape[-2:]
    out_images, targets = [], []
    for image, b, lab in zip(images, boxes, labels, strict=True):
        sample = {"boxes": tv_tensors.BoundingBoxes(b, format="XYXY", canvas_size=tuple(size)), "labels": lab}
        image_t, target = transform(tv_tensors.Image(image.float() / 255.0), sample)
        out_images.append(image_t.as_subclass(torch.Tensor))
        targets.append({"boxes": target["boxes"].as_subclass(torch.Tensor), "labels": target["labels"]})
    return out_images, targets
