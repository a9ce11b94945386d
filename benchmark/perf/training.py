"""Training throughput: alb's on-device path against a plain DataLoader + per-image transforms loop.

    python -m benchmark.perf.training                  # resnet18_cifar, 32x32, batch 128, this device
    python -m benchmark.perf.training --steps 50 --device cuda
    python -m benchmark.perf.training --steps 200 --warmup 30 --device cuda --compile

Both loops train the same network with the same recipe (SGD, random crop with 4 px padding +
horizontal flip, normalisation) on synthetic CIFAR-shaped uint8 images:

- fast: the whole dataset on the device as uint8, crop/flip/normalise there in batches (alb's
  trainer), channels-last + bf16 autocast on CUDA (``Execution.for_device``), cuDNN autotuning;
- compiled (--compile): the fast path with the backbone under torch.compile (warm-up steps absorb
  the compilation);
- plain: a torchvision-style Dataset returning per-image PIL transforms through a DataLoader
  (the loop most AL codebases use).

Reported: training images per second after warm-up steps, in the same process.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F


def _synthetic(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
            torch.randint(0, 10, (n,), generator=g))


def _model(device: str, execution: Any) -> torch.nn.Module:
    from benchmark.models.base import build_backbone

    torch.manual_seed(0)
    return execution.prepare_model(build_backbone("resnet18_cifar", 10, 3).to(device))


def fast_loop(images: torch.Tensor, labels: torch.Tensor, steps: int, warmup: int, batch: int, device: str,
              precision: str, compile: bool = False) -> float:
    """alb's trainer path: returns images per second."""
    from benchmark.config import TrainingConfig
    from benchmark.data.base import channel_stats
    from benchmark.training.augment import Normalizer
    from benchmark.training.execution import Execution
    from benchmark.training.loop import AugmentationSpec
    from benchmark.training.trainer import train

    execution = Execution.for_device(device, precision, compile)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    x, y = images[: batch * (steps + warmup)].to(device), labels[: batch * (steps + warmup)].to(device)
    mean, std = channel_stats(images[:1000])
    model = _model(device, execution)
    generator = torch.Generator(device=device).manual_seed(0)
    normalize, spec = Normalizer(mean, std, torch.device(device)), AugmentationSpec(4, True)

    def one_epoch(xs: torch.Tensor, ys: torch.Tensor) -> float:
        cfg = TrainingConfig.model_validate({"epochs": 1, "batch_size": batch,
                                             "optimizer": {"name": "sgd", "lr": 0.1}})
        return train(model, xs, ys, cfg, normalize, spec, generator, execution=execution).seconds

    one_epoch(x[: batch * warmup], y[: batch * warmup])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = one_epoch(x[batch * warmup:], y[batch * warmup:])  # train() syncs once per epoch
    return batch * steps / seconds


def plain_loop(images: torch.Tensor, labels: torch.Tensor, steps: int, warmup: int, batch: int, device: str,
               workers: int) -> float:
    """DataLoader + per-image torchvision transforms on PIL images, fp32: images per second."""
    import torchvision.transforms as T
    from PIL import Image

    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))])
    array = images.permute(0, 2, 3, 1).numpy()

    class PilDataset(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return batch * (steps + warmup)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            return transform(Image.fromarray(np.ascontiguousarray(array[i]))), int(labels[i])

    loader = torch.utils.data.DataLoader(PilDataset(), batch_size=batch, shuffle=True, num_workers=workers,
                                         drop_last=True, pin_memory=device.startswith("cuda"))
    from benchmark.training.execution import Execution
    from benchmark.training.loop import optimizer_step

    model = _model(device, Execution(device))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model.train()
    start = None
    for step, (xb, yb) in enumerate(loader):
        if step == warmup:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
        loss = F.cross_entropy(model(xb.to(device, non_blocking=True)), yb.to(device, non_blocking=True))
        optimizer_step(loss, optimizer)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    assert start is not None
    return batch * steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the plain loop")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--compile", action="store_true", help="also time the fast loop with torch.compile")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    images, labels = _synthetic(args.batch * (args.steps + args.warmup))
    fast = fast_loop(images, labels, args.steps, args.warmup, args.batch, args.device, args.precision)
    plain = plain_loop(images, labels, args.steps, args.warmup, args.batch, args.device, args.workers)
    compiled = (fast_loop(images, labels, args.steps, args.warmup, args.batch, args.device, args.precision, True)
                if args.compile else None)
    result = {"device": args.device, "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else "",
              "batch": args.batch, "steps": args.steps, "threads": torch.get_num_threads(),
              "fast_images_per_s": round(fast, 1), "plain_images_per_s": round(plain, 1),
              "speedup": round(fast / plain, 2)}
    if compiled is not None:
        result.update(compiled_images_per_s=round(compiled, 1), compiled_speedup=round(compiled / plain, 2))
    print(json.dumps(result))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
