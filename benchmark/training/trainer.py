"""Train a backbone on the labeled set with the cell's recipe (the procedure ``training.head`` and
``training.semi`` pick), and evaluate it on the test split.

The procedures live one module each below this one: :mod:`benchmark.training.supervised`,
:mod:`benchmark.training.heads`, :mod:`benchmark.training.semi`; the pieces their loops share in
:mod:`benchmark.training.loop`, the batched evaluation pass in :mod:`benchmark.training.forward`.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from benchmark.config import TrainingConfig
from benchmark.ops.metrics import accuracy, macro_f1
from benchmark.training.augment import Normalizer, resolve_flip
from benchmark.training.execution import FP32_CPU, Execution
from benchmark.training.forward import predict_logits
from benchmark.training.heads import train_head
from benchmark.training.joint import JointModule
from benchmark.training.loop import AugmentationSpec, EpochCallback, TrainResult
from benchmark.training.semi import train_label_propagation
from benchmark.training.supervised import train_supervised


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: TrainingConfig,
          normalize: Normalizer, augmentation: AugmentationSpec, generator: torch.Generator,
          on_epoch: EpochCallback | None = None,
          aux: JointModule | None = None,
          execution: Execution = FP32_CPU, *, pool_images: torch.Tensor | None = None) -> TrainResult:
    """Train ``model`` on (images, labels), both already on the model's device, with the cell's recipe.

    ``cfg.head`` and ``cfg.semi`` pick the procedure:

    - head ``full``, semi ``none``: supervised training of the whole network (:func:`train_supervised`);
      with ``aux``, the auxiliary module is trained jointly.
    - head ``linear`` / ``svm``: the backbone stays frozen and only ``model.head`` is fit on its features
      (:mod:`benchmark.training.heads`, seed 003).
    - semi ``label_propagation``: seed 004's algorithm 1 (:mod:`benchmark.training.semi`); it needs
      ``pool_images``, the uint8 images of the unlabeled pool on the same device.

    ``cfg`` is a resolved cell's (benchmark.config rejects the combinations none of these supports: an
    auxiliary module with head ``linear`` / ``svm`` or with label propagation, label propagation with head
    ``linear`` / ``svm``). ``execution`` sets
    autocast and memory format, never the recipe. ``augmentation.hflip`` is the dataset's default;
    ``cfg.flip`` (auto | on | off) decides whether the training augmentation flips.
    """
    augmentation = replace(augmentation, hflip=resolve_flip(cfg.flip, augmentation.hflip))
    if cfg.head != "full":
        return train_head(model, images, labels, cfg, normalize, generator, on_epoch, execution, augmentation)
    if cfg.semi == "label_propagation":
        if pool_images is None:
            raise ValueError("training.semi: label_propagation needs the unlabeled pool: pass "
                             "train(..., pool_images=<uint8 images of the unlabeled pool, on the model's device>)")
        return train_label_propagation(model, images, labels, pool_images, cfg, normalize, augmentation,
                                       generator, on_epoch, execution)
    return train_supervised(model, images, labels, cfg, normalize, augmentation, generator, on_epoch, aux,
                            execution)


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, normalize: Normalizer,
             num_classes: int, execution: Execution = FP32_CPU) -> dict[str, float]:
    """Test accuracy (a fraction) and macro-F1."""
    preds = predict_logits(model, images, normalize, execution=execution).argmax(dim=1)
    return {"accuracy": accuracy(preds, labels), "macro_f1": macro_f1(preds, labels, num_classes)}
