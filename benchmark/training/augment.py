"""Batch augmentation and normalisation on tensors, on the training device.

Images stay uint8 until a batch is drawn: crop and flip index into the uint8
batch, then normalisation produces float32 in one fused step.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and crop back to the original size at a random offset per image."""
    if padding <= 0:
        return images
    b, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    dev = images.device
    offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator, device=dev)
    rows = (offsets[0, :, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (offsets[1, :, None] + torch.arange(w, device=dev))[:, None, None, :]
    batch = torch.arange(b, device=dev)[:, None, None, None]
    channel = torch.arange(c, device=dev)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_hflip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], generator=generator, device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


class Normalizer:
    """uint8 NCHW -> float32 standardised with the train pool's per-channel statistics."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> None:
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = mean_t / std_t

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images.float() * self.scale - self.shift


# ---- "strong" augmentation (seed 003, Sec. 3: RandomResizedCrop scale [0.2, 1], horizontal flip,
# ColorJitter {0.4, 0.4, 0.4, 0.1} with p = 0.8, RandomGrayscale with p = 0.2), vectorised per batch

STRONG_SCALE = (0.2, 1.0)
STRONG_RATIO = (3 / 4, 4 / 3)
JITTER = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}
JITTER_P, GRAYSCALE_P = 0.8, 0.2
_LUMA = (0.299, 0.587, 0.114)


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def crop_boxes(n: int, generator: torch.Generator, device: torch.device, scale: tuple[float, float] = STRONG_SCALE,
               ratio: tuple[float, float] = STRONG_RATIO) -> torch.Tensor:
    """(n, 4) random crop boxes ``(width, height, cx, cy)``, sides and centres as fractions of the image
    (centre in [-1, 1], the image's normalised coordinates): area fraction uniform in ``scale``, aspect
    ratio log-uniform in ``ratio`` (torchvision's RandomResizedCrop). A side longer than the image is
    clamped to it, which shrinks the area; that happens only for areas above ``1 / max(ratio)`` and
    leaves at least ``1 / max(ratio)`` (3/4 with the default ratios)."""
    area = _uniform(n, *scale, generator, device)
    aspect = torch.exp(_uniform(n, math.log(ratio[0]), math.log(ratio[1]), generator, device))
    width = torch.sqrt(area * aspect).clamp(max=1.0)
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (1 - width) * (2 * torch.rand(n, generator=generator, device=device) - 1)
    cy = (1 - height) * (2 * torch.rand(n, generator=generator, device=device) - 1)
    return torch.stack([width, height, cx, cy], dim=1)


def random_resized_crop(x: torch.Tensor, generator: torch.Generator, scale: tuple[float, float] = STRONG_SCALE,
                        ratio: tuple[float, float] = STRONG_RATIO) -> torch.Tensor:
    """Crop a random area fraction in ``scale`` with aspect ratio in ``ratio`` (log-uniform) from each
    float image and resize it back to the input size, bilinearly (:func:`crop_boxes`). Unlike
    torchvision, which retries up to ten times and falls back to a centre crop, crops that do not fit
    are clamped to the image."""
    boxes = crop_boxes(x.shape[0], generator, x.device, scale, ratio)
    theta = torch.zeros(x.shape[0], 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = boxes.unbind(1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    luma = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * luma).sum(dim=1, keepdim=True)


def _rotate_hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Hue shift as a rotation of the chroma plane in YIQ space (an approximation of torchvision's
    HSV hue shift that stays vectorised)."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                          device=x.device, dtype=x.dtype)
    yiq = torch.einsum("ij,bjhw->bihw", to_yiq, x)
    angle = 2 * math.pi * turns.view(-1, 1, 1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], dim=1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_yiq), yiq)


def color_jitter(x: torch.Tensor, generator: torch.Generator, p: float = JITTER_P) -> torch.Tensor:
    """Brightness, contrast, saturation and hue jitter (in that fixed order) with probability ``p``
    per image, on float images in [0, 1]; grey images get brightness and contrast only."""
    b, c = x.shape[:2]
    dev = x.device

    def factor(strength: float) -> torch.Tensor:
        return _uniform(b, 1 - strength, 1 + strength, generator, dev).view(-1, 1, 1, 1)

    out = x * factor(JITTER["brightness"])
    gray = out.mean(dim=(1, 2, 3), keepdim=True) if c == 1 else _grayscale(out).mean(dim=(2, 3), keepdim=True)
    out = (out - gray) * factor(JITTER["contrast"]) + gray
    if c == 3:
        luma = _grayscale(out)
        out = (out - luma) * factor(JITTER["saturation"]) + luma
        out = _rotate_hue(out, _uniform(b, -JITTER["hue"], JITTER["hue"], generator, dev))
    apply = (torch.rand(b, generator=generator, device=dev) < p).view(-1, 1, 1, 1)
    return torch.where(apply, out.clamp(0, 1), x)


def random_grayscale(x: torch.Tensor, generator: torch.Generator, p: float = GRAYSCALE_P) -> torch.Tensor:
    if x.shape[1] != 3:
        return x
    apply = (torch.rand(x.shape[0], generator=generator, device=x.device) < p).view(-1, 1, 1, 1)
    return torch.where(apply, _grayscale(x).expand_as(x), x)


def crop_and_flip(images: torch.Tensor, scale: tuple[float, float], hflip: bool,
                  generator: torch.Generator) -> torch.Tensor:
    """uint8 batch -> float batch in [0, 1]: random-resized crop (area in ``scale``), then a random
    horizontal flip when ``hflip``; the geometric part shared by the ``strong`` and ``resized_crop``
    policies."""
    x = random_resized_crop(images.float() / 255.0, generator, scale=scale)
    return random_hflip(x, generator) if hflip else x


def strong_augment(images: torch.Tensor, hflip: bool, generator: torch.Generator) -> torch.Tensor:
    """uint8 batch -> float batch on the 0..255 scale (what :class:`Normalizer` expects)."""
    x = crop_and_flip(images, STRONG_SCALE, hflip, generator)
    x = random_grayscale(color_jitter(x, generator), generator)
    return x * 255.0


# ---- "resized_crop" augmentation (seed 003 l.111, supervised training: "the conventional
# RandomResizedCrop with scale [0.08, 1.0] and RandomHorizontalFlip"; torchvision's default aspect
# ratios 3/4-4/3, output size = input size)

RESIZED_CROP_SCALE = (0.08, 1.0)


def resized_crop_augment(images: torch.Tensor, hflip: bool, generator: torch.Generator) -> torch.Tensor:
    """uint8 batch -> float batch on the 0..255 scale: random-resized crop (area 8-100 %) + flip."""
    return crop_and_flip(images, RESIZED_CROP_SCALE, hflip, generator) * 255.0


# ---- training.flip: whether the training augmentation flips images left-right

FLIP_SETTINGS = ("auto", "on", "off")


def resolve_flip(setting: str, dataset_flips: bool) -> bool:
    """``training.flip``: auto = the dataset registry's default (no flips for digits, SVHN, ...: a
    mirrored digit is another symbol or none), on = always flip (seed 001 l.134 trains every dataset
    with "random horizontal flips"), off = never."""
    if setting not in FLIP_SETTINGS:
        raise ValueError(f"training.flip must be one of {', '.join(FLIP_SETTINGS)}, got '{setting}'")
    return dataset_flips if setting == "auto" else setting == "on"
