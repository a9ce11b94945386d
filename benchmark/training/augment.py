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


def random_resized_crop(x: torch.Tensor, generator: torch.Generator, scale: tuple[float, float] = STRONG_SCALE,
                        ratio: tuple[float, float] = STRONG_RATIO) -> torch.Tensor:
    """Crop a random area fraction in ``scale`` with aspect ratio in ``ratio`` (log-uniform) from each
    float image and resize it back, bilinearly. Unlike torchvision, which retries up to ten times and
    falls back to a centre crop, crops that do not fit are clamped to the image."""
    b = x.shape[0]
    dev = x.device
    area = _uniform(b, *scale, generator, dev)
    log_ratio = _uniform(b, math.log(ratio[0]), math.log(ratio[1]), generator, dev)
    aspect = torch.exp(log_ratio)
    width = torch.sqrt(area * aspect).clamp(max=1.0)  # fractions of the image side
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (1 - width) * (2 * torch.rand(b, generator=generator, device=dev) - 1)
    cy = (1 - height) * (2 * torch.rand(b, generator=generator, device=dev) - 1)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = width, cx, height, cy
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


def strong_augment(images: torch.Tensor, hflip: bool, generator: torch.Generator) -> torch.Tensor:
    """uint8 batch -> float batch on the 0..255 scale (what :class:`Normalizer` expects)."""
    x = images.float() / 255.0
    x = random_resized_crop(x, generator)
    if hflip:
        x = random_hflip(x, generator)
    x = random_grayscale(color_jitter(x, generator), generator)
    return x * 255.0
