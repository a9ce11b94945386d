"""Test-set metrics: accuracy and macro-F1 from predicted and true class indices.

The same definitions as torchmetrics' ``multiclass_accuracy(average="micro")`` and
``multiclass_f1_score(average="macro")`` (tests/test_metrics.py checks equality), written out because
importing torchmetrics costs ~3 s per process (it loads its audio, image and text metrics too), which
every local worker, Ray task and Slurm array task would pay for two lines of arithmetic.
"""

from __future__ import annotations

import torch


def _check_pair(preds: torch.Tensor, target: torch.Tensor) -> None:
    if preds.shape != target.shape or preds.ndim != 1:
        raise ValueError(f"preds and target must be 1-d and of one shape, got {tuple(preds.shape)} "
                         f"and {tuple(target.shape)}")


def accuracy(preds: torch.Tensor, target: torch.Tensor) -> float:
    """The fraction of predictions equal to the target."""
    _check_pair(preds, target)
    correct = (preds == target).sum().float()
    return float(correct / max(1, target.numel()))  # float32, as torchmetrics divides


def macro_f1(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """The mean over classes of F1 = 2 TP / (2 TP + FP + FN); a class neither present nor predicted is left
    out of the mean (torchmetrics' rule), a class with a zero denominator otherwise scores 0."""
    _check_pair(preds, target)
    pairs = torch.bincount(target.long() * num_classes + preds.long(), minlength=num_classes * num_classes)
    confusion = pairs.reshape(num_classes, num_classes)  # rows: true class, columns: predicted
    tp = confusion.diagonal()
    fp = confusion.sum(dim=0) - tp
    fn = confusion.sum(dim=1) - tp
    denominator = (2 * tp + fp + fn).float()
    per_class = torch.where(denominator > 0, 2 * tp.float() / denominator.clamp_min(1), torch.zeros(()))
    weights = ((tp + fp + fn) > 0).float()
    # weight each class, then sum: torchmetrics' order of operations, so the float32 result is the same
    return float((per_class * weights / weights.sum().clamp_min(1)).sum())
