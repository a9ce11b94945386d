"""Random Gaussian blur of a batch, on the device, one sigma per image: SimSiam's pre-training blur.

Seed 003 l.111: "Blurring augmentation [6] has a Gaussian kernel with std in [0.1, 2.0]" (the extraction prints
"[0;1; 2;0]"). The probability is not in the paper; SimSiam's official recipe (facebookresearch/simsiam,
main_simsiam.py l.235) applies ``GaussianBlur([.1, 2.])`` with p = 0.5, after the crop, colour jitter and
grayscale. Its blur (simsiam/loader.py l.29-31) is PIL's ``GaussianBlur(radius=sigma)``: sigma in pixels and
no truncation to a fraction of the image (SimCLR's 10 %-of-the-side kernel would be 3 pixels on CIFAR and
cut sigma = 2 down to a box filter). alb's choice (a declared assumption): sigma in pixels of the image as
stored, a kernel of radius ceil(3 x sigma_max) = 6 (13 taps), shrunk to the image's side - 1 on smaller
images (reflect padding needs that), each image's taps normalised to sum 1."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

BLUR_SIGMA = (0.1, 2.0)  # seed 003 l.111
BLUR_P = 0.5  # SimSiam's main_simsiam.py l.235 (not in the paper)
TRUNCATE = 3.0  # kernel radius in sigmas (of the largest sigma)


def kernel_radius(sigma_max: float, height: int, width: int) -> int:
    """ceil(TRUNCATE x sigma_max), at most the image's shorter side - 1 (reflect padding's limit)."""
    return max(0, min(math.ceil(TRUNCATE * sigma_max), min(height, width) - 1))


def gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """(n, 2 * radius + 1) 1-D Gaussian taps, one row per sigma, each summing to 1."""
    offsets = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float32)
    taps = torch.exp(-0.5 * (offsets[None, :] / sigma.float()[:, None]) ** 2)
    return taps / taps.sum(dim=1, keepdim=True)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, sigma_max: float | None = None) -> torch.Tensor:
    """Blur float NCHW images, image i with std ``sigma[i]`` (pixels): a separable convolution, rows then
    columns, with per-image kernels as one grouped convolution over the (image, channel) planes. The kernel's
    radius follows ``sigma_max`` (default: the largest sigma, read back from the device)."""
    n, c, h, w = x.shape
    if sigma.shape != (n,):
        raise ValueError(f"gaussian_blur: need one sigma per image ({n}), got shape {tuple(sigma.shape)}")
    if n == 0:
        return x
    radius = kernel_radius(float(sigma.max()) if sigma_max is None else sigma_max, h, w)
    if radius == 0:
        return x
    taps = gaussian_kernels(sigma, radius).to(x.dtype).repeat_interleave(c, dim=0)  # (n * c, 2r + 1)
    planes = x.reshape(1, n * c, h, w)
    planes = F.conv2d(F.pad(planes, (radius, radius, 0, 0), mode="reflect"), taps[:, None, None, :], groups=n * c)
    planes = F.conv2d(F.pad(planes, (0, 0, radius, radius), mode="reflect"), taps[:, None, :, None], groups=n * c)
    return planes.reshape(n, c, h, w)


def random_gaussian_blur(x: torch.Tensor, generator: torch.Generator, p: float = BLUR_P,
                         sigma_range: tuple[float, float] = BLUR_SIGMA) -> torch.Tensor:
    """With probability ``p`` per image, blur it with sigma uniform in ``sigma_range`` (pixels); the others
    are returned unchanged. Draws exactly 2 x n numbers from ``generator`` and never syncs the device."""
    low, high = sigma_range
    if not 0 < low <= high or not 0 <= p <= 1:
        raise ValueError(f"random_gaussian_blur: need 0 < sigma low <= high and p in [0, 1], got {sigma_range}, {p}")
    n = x.shape[0]
    sigma = low + (high - low) * torch.rand(n, generator=generator, device=x.device)
    apply = torch.rand(n, generator=generator, device=x.device) < p
    return torch.where(apply[:, None, None, None], gaussian_blur(x, sigma, sigma_max=high), x)
