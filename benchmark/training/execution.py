"""How a cell is executed on the hardware, as opposed to what is trained.

None of these options change the recipe (optimizer, epochs, augmentation distribution); they
change the arithmetic: bf16 autocast (batch norm and the loss stay fp32, as autocast keeps
them), channels-last memory format, cuDNN autotuning and, on request, torch.compile. They are
recorded with every result (`precision`, `channels_last`, `compiled`) because low precision changes
the numbers, if not the method.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

Precision = Literal["fp32", "bf16"]


@dataclass(frozen=True)
class Execution:
    device: str = "cpu"
    precision: Precision = "fp32"
    channels_last: bool = False
    compile: bool = False  # torch.compile the backbone's forward (nn.Module.compile, in place)

    @staticmethod
    def for_device(device: str, precision: str = "auto", compile: bool = False) -> Execution:
        """auto: bf16 autocast + channels-last on CUDA, plain fp32 on CPU (bit-reproducible there)."""
        cuda = device.startswith("cuda")
        if precision == "auto":
            return Execution(device, "bf16" if cuda else "fp32", cuda, compile)
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, got '{precision}'")
        return Execution(device, precision, cuda, compile)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.precision == "fp32":
            yield
            return
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
            yield

    def prepare_model(self, model: nn.Module) -> nn.Module:
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.compile:
            # in place, so model.features / forward_with_embedding stay reachable; a new instance of the
            # same architecture (next round, cold start) reuses the compiled graph, parameters being inputs
            model.compile()
        return model

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.ndim == 4 else x


FP32_CPU = Execution()
